package server

import (
	"maps"
	"net"
	"os"
	"strings"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/mesh"
	"github.com/sluice-proxy/sluice/runtime/wasmfilter"
)

// istioVersion is the ISTIO_VERSION a sidecar reports unless told
// otherwise: Istio's plugins want the key present, and a recent release
// keeps version-gated ones on their current behaviour.
const istioVersion = "1.24.0"

// nodeFor is the node filters read (node.*): [node] as written, and in
// sidecar mode Istio's node metadata filled in as Istio's agent fills it,
// from ISTIO_META_* variables, the pod's variables and the [identity]
// certificate's SPIFFE ID.
func nodeFor(cfg *config.Config, id *mesh.Certificate, env func(string) string, environ func() []string) *wasmfilter.Node {
	n := &wasmfilter.Node{ID: cfg.Node.ID, Cluster: cfg.Node.Cluster, Metadata: maps.Clone(cfg.Node.Metadata)}
	if cfg.Mode != "sidecar" {
		return n
	}
	if n.Metadata == nil {
		n.Metadata = map[string]any{}
	}
	md := n.Metadata
	set := func(k, v string) {
		if _, ok := md[k]; !ok && v != "" {
			md[k] = v
		}
	}
	for _, kv := range environ() {
		k, v, _ := strings.Cut(kv, "=")
		if name, ok := strings.CutPrefix(k, "ISTIO_META_"); ok {
			set(name, v)
		}
	}
	var spiffe mesh.ID
	if id != nil {
		spiffe = id.ID()
	}
	name := env("POD_NAME")
	if name == "" {
		name, _ = os.Hostname()
	}
	set("NAME", name)
	set("NAMESPACE", spiffe.Namespace())
	set("NAMESPACE", env("POD_NAMESPACE"))
	set("NAMESPACE", "default")
	if _, sa, ok := strings.Cut(spiffe.Path, "/sa/"); ok {
		set("SERVICE_ACCOUNT", sa)
	}
	set("SERVICE_ACCOUNT", env("SERVICE_ACCOUNT"))
	set("WORKLOAD_NAME", str(md["NAME"]))
	if _, ok := md["LABELS"]; !ok {
		md["LABELS"] = map[string]any{}
	}
	set("MESH_ID", spiffe.TrustDomain)
	set("MESH_ID", "cluster.local")
	set("CLUSTER_ID", "Kubernetes")
	set("ISTIO_VERSION", istioVersion)
	ip := env("INSTANCE_IP")
	if ip == "" {
		ip = hostIPs()
	}
	set("INSTANCE_IPS", ip)
	ns := str(md["NAMESPACE"])
	if n.ID == "" {
		first, _, _ := strings.Cut(str(md["INSTANCE_IPS"]), ",")
		n.ID = "sidecar~" + first + "~" + str(md["NAME"]) + "." + ns + "~" + ns + ".svc.cluster.local"
	}
	if n.Cluster == "" {
		n.Cluster = str(md["WORKLOAD_NAME"]) + "." + ns
	}
	return n
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// hostIPs lists this host's non-loopback addresses, comma-separated, as
// Istio's INSTANCE_IPS.
func hostIPs() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	var out []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			out = append(out, ipn.IP.String())
		}
	}
	return strings.Join(out, ",")
}
