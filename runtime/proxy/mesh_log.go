package proxy

import (
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// meshIdentities adds the workload identities of a request to its
// access-log line, as Istio's source_principal / destination_principal:
// the mTLS peer's SPIFFE ID on the downstream side, and on the way to a
// cluster that must prove an identity (a sidecar's [[services]]), that one.
// Nothing is added when neither is known.
func (x *activeStream) meshIdentities() zap.Field {
	var src, dst string
	if x.s != nil && x.s.info.TLS != nil && x.s.info.TLS.MTLS {
		for _, u := range x.s.info.TLS.PeerURISANs {
			if strings.HasPrefix(u, "spiffe://") {
				src = u
				break
			}
		}
	}
	if x.cluster != "" && x.snap != nil {
		if cl := x.snap.Upstream.Cluster(x.cluster); cl != nil {
			if t := cl.Config().TLS; t != nil {
				dst = t.Identity
			}
		}
	}
	if src == "" && dst == "" {
		return zap.Skip()
	}
	return zap.Inline(identities{src, dst})
}

type identities struct{ src, dst string }

func (i identities) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	if i.src != "" {
		enc.AddString("source_principal", i.src)
	}
	if i.dst != "" {
		enc.AddString("destination_principal", i.dst)
	}
	return nil
}
