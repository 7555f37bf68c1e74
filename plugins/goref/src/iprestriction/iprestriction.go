// Package iprestriction is the ip-restriction plugin (Kong's): allow and
// deny CIDR lists on the client address, for HTTP streams and TCP
// connections.
package iprestriction

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
)

// Name is the plugin's root_id.
const Name = "ip-restriction"

// Config is Kong's ip-restriction schema.
type Config struct {
	// Allow, when not empty, lets only these addresses or CIDRs through.
	Allow []string `json:"allow"`
	// Deny blocks these addresses or CIDRs (unless Allow lists them).
	Deny []string `json:"deny"`
	// Status (default 403) and Message (default "IP address not allowed").
	Status  uint32 `json:"status"`
	Message string `json:"message"`
}

// Filter is a validated configuration.
type Filter struct {
	allow, deny []netip.Prefix
	status      uint32
	message     string
}

// Parse validates a configuration.
func Parse(data []byte) (*Filter, error) {
	var c Config
	if err := common.DecodeConfig(data, &c); err != nil {
		return nil, err
	}
	f := &Filter{status: c.Status, message: c.Message}
	var err error
	if f.allow, err = prefixes("allow", c.Allow); err != nil {
		return nil, err
	}
	if f.deny, err = prefixes("deny", c.Deny); err != nil {
		return nil, err
	}
	if f.status == 0 {
		f.status = 403
	}
	if f.status < 100 || f.status > 599 {
		return nil, fmt.Errorf("config: status: %d is not an HTTP status", f.status)
	}
	if f.message == "" {
		f.message = "IP address not allowed"
	}
	return f, nil
}

func prefixes(key string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range list {
		s = strings.TrimSpace(s)
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("config: %s[%d]: %q is not an address or CIDR", key, i, s)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("config: %s[%d]: %q is not an address or CIDR", key, i, s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func match(list []netip.Prefix, a netip.Addr) bool {
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Allowed says whether a client IP may pass. An address that does not parse
// is refused when any list is configured: failing closed is the point.
func (f *Filter) Allowed(ip string) bool {
	if len(f.allow) == 0 && len(f.deny) == 0 {
		return true
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	if len(f.allow) > 0 {
		// As Kong: when an allow list exists it decides.
		return match(f.allow, a)
	}
	return !match(f.deny, a)
}

// Reply is the local response for a refused request.
func (f *Filter) Reply() common.Reply { return common.JSONReply(f.status, f.message) }
