package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-proxy/sluice/runtime/pluginsource"
)

// Known names, for validation and for messages that list the choices.
var (
	ListenerProtocols = []string{"http1", "h2", "h2c", "h3", "tcp"}
	ClusterProtocols  = []string{"http1", "h2", "h2c", "h3", "downstream"}
	LBPolicies        = []string{"round_robin", "least_request", "random", "ring_hash"}
	RetryOn           = []string{"5xx", "gateway-error", "reset", "connect-failure", "refused-stream", "retriable-status-codes"}
)

// validator collects problems; key paths name the file's keys so that a
// user finds each one, and generated items name the key they came from.
type validator struct {
	c        *Config
	problems []Problem
}

func (v *validator) add(key, format string, args ...any) {
	v.problems = append(v.problems, Problem{
		File: v.c.Path, Line: v.c.src.Line(key), Key: key, Msg: fmt.Sprintf(format, args...),
	})
}

// Validate reports every problem in the config, not just the first, as a
// *Error; nil when the config is usable. Load calls it; a Config built in
// code should call it too.
func (c *Config) Validate() error {
	v := &validator{c: c}
	clusters := map[string]bool{}
	for _, cl := range c.Clusters {
		clusters[cl.Name] = true
	}
	plugins := map[string]bool{}
	for _, p := range c.Plugins {
		plugins[p.Name] = true
	}
	routes := map[string]bool{}
	for _, r := range c.Routes {
		routes[r.Name] = true
	}

	if !c.Admin.Disabled {
		v.address("admin.address", c.Admin.Address)
	}
	if c.Server.MaxMirrorsInFlight < 0 {
		v.add("server.max_mirrors_in_flight", "must not be negative")
	}
	if c.AccessLog.FlushInterval < 0 {
		v.add("access_log.flush_interval", "must not be negative")
	}
	v.pathPolicy("server", c.Server.PathNormalization, c.Server.PathWithEscapedSlashes, c.Server.PathParameters)
	if c.Server.MaxConnections < 0 {
		v.add("server.max_connections", "must not be negative (0 derives the cap from the file-descriptor limit)")
	}
	v.listeners(clusters, plugins, routes)
	v.nodeMetadata("node.metadata", c.Node.Metadata)
	v.plugins()
	v.routes(clusters, plugins)
	v.clusters()
	v.sidecar(plugins)
	switch c.SharedStore.Kind {
	case "memory":
	case "redis":
		if c.SharedStore.Redis.Address == "" {
			v.add("shared_store.redis.address", "required when kind is \"redis\"")
		}
	default:
		v.add("shared_store.kind", "unknown kind %q; want \"memory\" or \"redis\"", c.SharedStore.Kind)
	}
	if len(v.problems) == 0 {
		return nil
	}
	sortProblems(v.problems)
	return &Error{Problems: v.problems}
}

// origin names the key a generated item came from, for its problems.
func origin(generated bool, fileKey, genKey string) string {
	if generated {
		return genKey
	}
	return fileKey
}

func (v *validator) listeners(clusters, plugins, routes map[string]bool) {
	names := map[string]nameUse{}
	addrs := map[string]string{}
	for i, l := range v.c.Listeners {
		key := fmt.Sprintf("listeners[%d]", i)
		if l.Generated {
			key = "sidecar." + l.Direction
			if l.Direction == "" {
				key = "mode"
			}
		}
		v.unique("listener", names, key, l.Name, l.Generated)
		// A value taken from [server] was checked there.
		sv := v.c.Server
		v.pathPolicy(key, ifDiffers(l.PathNormalization, sv.PathNormalization),
			ifDiffers(l.PathWithEscapedSlashes, sv.PathWithEscapedSlashes), ifDiffers(l.PathParameters, sv.PathParameters))
		if v.address(origin(l.Generated, key+".address", key), l.Address) {
			// Port 0 asks the kernel for a free port: never a clash.
			if prev, dup := addrs[l.Address]; dup && !strings.HasSuffix(l.Address, ":0") {
				v.add(origin(l.Generated, key+".address", key), "address %s is already used by %s", l.Address, prev)
			}
			addrs[l.Address] = key
		}
		for _, w := range []struct {
			name string
			size Size
		}{{"initial_stream_window_size", l.InitialStreamWindowSize}, {"initial_connection_window_size", l.InitialConnectionWindowSize}} {
			// RFC 9113 6.9.2: a window is at most 2^31-1; below the
			// RFC's initial 65535 a window would stall its peer.
			if w.size != 0 && (w.size < 65535 || w.size > 1<<31-1) {
				v.add(key+"."+w.name, "%d is out of range; want 65535 (64KiB-1) to 2147483647 (2GiB-1)", int64(w.size))
			}
		}
		tcp := false
		seen := map[string]bool{}
		for j, p := range l.Protocols {
			pk := fmt.Sprintf("%s.protocols[%d]", key, j)
			switch {
			case !slices.Contains(ListenerProtocols, p):
				v.add(pk, "unknown protocol %q; want one of %s", p, strings.Join(ListenerProtocols, ", "))
			case seen[p]:
				v.add(pk, "protocol %q listed twice", p)
			case (p == "h2" || p == "h3") && l.TLS == nil:
				v.add(pk, "protocol %q needs tls (set tls = { cert = ..., key = ... })", p)
			}
			seen[p] = true
			tcp = tcp || p == "tcp"
		}
		if tcp && len(l.Protocols) > 1 {
			v.add(key+".protocols", "\"tcp\" cannot be combined with HTTP protocols on one listener")
		}
		if tcp {
			switch {
			case l.Cluster == "":
				v.add(key+".cluster", "a tcp listener needs a cluster")
			case !clusters[l.Cluster]:
				v.add(key+".cluster", "unknown cluster %q", l.Cluster)
			}
			if len(l.Routes) > 0 {
				v.add(key+".routes", "a tcp listener has no routes; it proxies to its cluster")
			}
			if l.StreamIdleTimeout != nil {
				v.add(key+".stream_idle_timeout", "only HTTP listeners have streams; a tcp listener has none")
			}
		} else if l.Cluster != "" {
			v.add(key+".cluster", "only a tcp listener takes a cluster; HTTP listeners route with [[routes]]")
		}
		for j, r := range l.Routes {
			if !routes[r] {
				v.add(fmt.Sprintf("%s.routes[%d]", key, j), "unknown route %q", r)
			}
		}
		for j, p := range l.Plugins {
			if !plugins[p] {
				v.add(fmt.Sprintf("%s.plugins[%d]", key, j), "unknown plugin %q", p)
			}
		}
		if l.TLS != nil && !l.Generated {
			// A generated listener's files are [identity]'s, checked there.
			v.file(key+".tls.cert", l.TLS.Cert, true)
			v.file(key+".tls.key", l.TLS.Key, true)
			v.file(key+".tls.client_ca", l.TLS.ClientCA, false)
		}
		switch l.Direction {
		case "", "inbound", "outbound":
		default:
			v.add(key+".direction", "unknown direction %q; want \"inbound\" or \"outbound\"", l.Direction)
		}
	}
}

// istioPattern reports whether s is an exact value, "*", a prefix ("/pay/*")
// or a suffix ("*.json") match, the only forms Istio's string matches take.
func istioPattern(s string) bool {
	if s == "" {
		return false
	}
	inner := strings.TrimSuffix(strings.TrimPrefix(s, "*"), "*")
	return s == "*" || !strings.Contains(inner, "*") && !(strings.HasPrefix(s, "*") && strings.HasSuffix(s, "*"))
}

// nameUse remembers where a name was first used.
type nameUse struct {
	key       string
	generated bool
}

// unique reports a missing or repeated name. A generated item comes after
// the file's, so when it collides the file's item is the one to rename,
// and the problem points there; a collision between two generated items
// repeats a [[services]] name, which the services check reports.
func (v *validator) unique(kind string, names map[string]nameUse, key, name string, generated bool) {
	if name == "" {
		v.add(key+".name", "required")
		return
	}
	prev, dup := names[name]
	switch {
	case !dup:
		names[name] = nameUse{key: key, generated: generated}
	case generated && prev.generated:
	case generated:
		v.add(prev.key+".name", "%s name %q is taken by %s mode, which generates a %s of that name; rename this one", kind, name, v.c.Mode, kind)
		names[name] = nameUse{key: prev.key, generated: true} // say it once
	default:
		v.add(key+".name", "duplicate %s name %q (also %s)", kind, name, prev.key)
	}
}

// address checks a host:port and reports whether it was usable.
func (v *validator) address(key, addr string) bool {
	if addr == "" {
		v.add(key, "required (host:port)")
		return false
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(key, "%q is not host:port", addr)
		return false
	}
	_ = host
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add(key, "%q: bad port %q", addr, port)
		return false
	}
	return true
}

func (v *validator) plugins() {
	for i, r := range v.c.Wasm.InsecureRegistries {
		if r == "" || strings.ContainsAny(r, "/ ") {
			v.add(fmt.Sprintf("wasm.insecure_registries[%d]", i), "%q: want a registry as host:port, as in \"127.0.0.1:5000\"", r)
		}
	}
	names := map[string]bool{}
	for i, p := range v.c.Plugins {
		key := fmt.Sprintf("plugins[%d]", i)
		if p.Name == "" {
			v.add(key+".name", "required")
		} else if names[p.Name] {
			v.add(key+".name", "duplicate plugin name %q", p.Name)
		}
		names[p.Name] = true
		switch {
		case p.Wasm == "":
			v.add(key+".wasm", "required: \"builtin:NAME\" or a path to a .wasm file")
		case strings.HasPrefix(p.Wasm, "builtin:"):
			if strings.TrimPrefix(p.Wasm, "builtin:") == "" {
				v.add(key+".wasm", "\"builtin:\" needs a plugin name, as in \"builtin:jwt\"")
			}
		case strings.Contains(p.Wasm, "://"):
			v.pluginSource(key, p)
		default:
			if err := StatFile(v.c.ResolvePath(p.Wasm), int64(v.c.Wasm.MaxModuleBytes)); err != nil {
				v.add(key+".wasm", "%v", err)
			}
			v.pluginSource(key, p)
		}
		if p.Failure != "closed" && p.Failure != "open" {
			v.add(key+".failure", "unknown failure policy %q; want \"closed\" or \"open\"", p.Failure)
		}
		if p.Config != nil && p.ConfigRaw != "" {
			v.add(key+".config_raw", "set config or config_raw, not both")
		}
		if p.VMConfig != nil && p.VMConfigRaw != "" {
			v.add(key+".vm_config_raw", "set vm_config or vm_config_raw, not both")
		}
		if p.VM.Instances < 0 {
			v.add(key+".vm.instances", "must not be negative")
		}
		if p.VM.RestartBackoff < 0 {
			v.add(key+".vm.restart_backoff", "must not be negative")
		}
	}
}

// pluginSource checks a plugin's URL with its sha256 and pull_policy;
// a file:// module must exist now, a remote one is fetched at load.
func (v *validator) pluginSource(key string, p Plugin) {
	src, err := pluginsource.Parse(p.Wasm, p.SHA256, p.PullPolicy)
	if err != nil {
		k := key + ".wasm"
		if strings.Contains(err.Error(), "pull_policy") {
			k = key + ".pull_policy"
		} else if strings.HasPrefix(err.Error(), "sha256") {
			k = key + ".sha256"
		}
		v.add(k, "%v", err)
		return
	}
	if src.Kind == pluginsource.File && strings.HasPrefix(p.Wasm, "file://") {
		if err := StatFile(src.Path, int64(v.c.Wasm.MaxModuleBytes)); err != nil {
			v.add(key+".wasm", "%v", err)
		}
	}
}

// file checks that a file the config names can be read now, so a typo in
// a path fails `sluice validate` rather than the first TLS handshake.
// Paths are already resolved against the config's directory.
func (v *validator) file(key, path string, required bool) {
	if path == "" {
		if required {
			v.add(key, "required")
		}
		return
	}
	if err := StatFile(path, MaxNamedFileBytes); err != nil {
		v.add(key, "%v", err)
	}
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// ResolvePath makes a path from the config (a .wasm file, a certificate)
// relative to the config file's directory, so a config works from any
// working directory. Load already resolves every path field; this is for
// paths found elsewhere (inside a plugin's config, say).
func (c *Config) ResolvePath(p string) string {
	if p == "" || filepath.IsAbs(p) || c.Path == "" {
		return p
	}
	joined := filepath.Join(filepath.Dir(c.Path), p)
	// Absolute, so that resolving twice (Load, then a consumer) is harmless
	// even when the config itself was named by a relative path.
	if abs, err := filepath.Abs(joined); err == nil {
		return abs
	}
	return joined
}

var methodToken = regexp.MustCompile(`^[A-Z][A-Z0-9_-]*$`)

func (v *validator) routes(clusters, plugins map[string]bool) {
	names := map[string]nameUse{}
	for i, r := range v.c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if r.Generated {
			key = "services"
			if r.Name == InboundRouteName {
				key = "sidecar"
			}
			for j, s := range v.c.Services {
				if OutboundPrefix+s.Name == r.Name {
					key = fmt.Sprintf("services[%d]", j)
				}
			}
		}
		v.unique("route", names, key, r.Name, r.Generated)
		v.match(key+".match", r.Match)
		for j, p := range r.Plugins {
			if !plugins[p] {
				v.add(fmt.Sprintf("%s.plugins[%d]", key, j), "unknown plugin %q", p)
			}
		}
		if len(r.Backends) == 0 {
			v.add(key+".backends", "a route needs at least one backend")
		}
		weighted, total := 0, 0
		for j, b := range r.Backends {
			bk := fmt.Sprintf("%s.backends[%d]", key, j)
			if r.Generated {
				bk = key
			}
			switch {
			case b.Cluster == "":
				v.add(bk+".cluster", "required")
			case !clusters[b.Cluster]:
				v.add(bk+".cluster", "unknown cluster %q", b.Cluster)
			}
			if b.Weight < 0 {
				v.add(bk+".weight", "must not be negative")
			}
			for k, h := range b.Headers {
				v.headerMatch(fmt.Sprintf("%s.headers[%d]", bk, k), h)
			}
			if len(b.Headers) == 0 {
				weighted++
				total += max(b.Weight, 0)
			}
		}
		if weighted > 0 && total == 0 {
			v.add(key+".backends", "all weights are zero; give at least one backend a positive weight")
		}
		if r.Retry != nil {
			v.retry(key+".retry", r.Retry)
		}
		if r.StripPrefix && r.PrefixRewrite != "" {
			v.add(key+".prefix_rewrite", "set strip_prefix or prefix_rewrite, not both")
		}
		if (r.StripPrefix || r.PrefixRewrite != "") && r.Match.PathPrefix == "" {
			k := key + ".strip_prefix"
			if !r.StripPrefix {
				k = key + ".prefix_rewrite"
			}
			v.add(k, "needs match.path_prefix")
		}
		switch {
		case r.Mirror != "" && !clusters[r.Mirror] && r.Generated:
			v.add(key+".mirror", "unknown service or cluster %q", r.Mirror)
		case r.Mirror != "" && !clusters[r.Mirror]:
			v.add(key+".mirror", "unknown cluster %q", r.Mirror)
		}
		if p := r.MirrorPercentage; p != nil {
			switch {
			case r.Mirror == "":
				v.add(key+".mirror_percentage", "needs mirror (the cluster that gets the copies)")
			case *p < 0 || *p > 100 || *p != *p:
				v.add(key+".mirror_percentage", "%v is not a percentage (0 to 100)", *p)
			}
		}
	}
}

func (v *validator) match(key string, m Match) {
	for j, h := range m.Hosts {
		hk := fmt.Sprintf("%s.hosts[%d]", key, j)
		switch {
		case h == "":
			v.add(hk, "empty host")
		case h == "*":
		case strings.Contains(h, "*") && (!strings.HasPrefix(h, "*.") || strings.Count(h, "*") > 1 || len(h) < 3):
			v.add(hk, "bad host %q: a wildcard is only allowed as a leading \"*.\", as in \"*.example.com\"", h)
		}
	}
	set := 0
	for _, s := range []string{m.Path, m.PathPrefix, m.PathRegex} {
		if s != "" {
			set++
		}
	}
	if set > 1 {
		v.add(key, "set only one of path, path_prefix, path_regex")
	}
	if m.Path != "" && !strings.HasPrefix(m.Path, "/") {
		v.add(key+".path", "must start with \"/\"")
	}
	if m.PathPrefix != "" && !strings.HasPrefix(m.PathPrefix, "/") {
		v.add(key+".path_prefix", "must start with \"/\"")
	}
	if m.PathRegex != "" {
		if _, err := regexp.Compile(m.PathRegex); err != nil {
			v.add(key+".path_regex", "bad regex: %v", err)
		}
	}
	for j, meth := range m.Methods {
		if !methodToken.MatchString(meth) {
			v.add(fmt.Sprintf("%s.methods[%d]", key, j), "bad method %q (methods are upper case, as \"GET\")", meth)
		}
	}
	for j, h := range m.Headers {
		v.headerMatch(fmt.Sprintf("%s.headers[%d]", key, j), h)
	}
	for j, q := range m.Query {
		v.headerMatch(fmt.Sprintf("%s.query[%d]", key, j), q)
	}
}

func (v *validator) headerMatch(key string, h HeaderMatch) {
	if h.Name == "" {
		v.add(key+".name", "required")
	}
	n := 0
	for _, b := range []bool{h.Exact != "", h.Regex != "", h.Present, h.Absent} {
		if b {
			n++
		}
	}
	if n != 1 {
		v.add(key, "set exactly one of exact, regex, present, absent")
	}
	if h.Regex != "" {
		if _, err := regexp.Compile(h.Regex); err != nil {
			v.add(key+".regex", "bad regex: %v", err)
		}
	}
}

func (v *validator) retry(key string, r *Retry) {
	if r.Attempts < 0 {
		v.add(key+".attempts", "must not be negative")
	}
	for j, on := range r.On {
		if !slices.Contains(RetryOn, on) {
			v.add(fmt.Sprintf("%s.on[%d]", key, j), "unknown retry condition %q; want one of %s", on, strings.Join(RetryOn, ", "))
		}
	}
	if slices.Contains(r.On, "retriable-status-codes") && len(r.RetriableStatusCodes) == 0 {
		v.add(key+".retriable_status_codes", "required when on has \"retriable-status-codes\"")
	}
	for j, code := range r.RetriableStatusCodes {
		if code < 100 || code > 599 {
			v.add(fmt.Sprintf("%s.retriable_status_codes[%d]", key, j), "%d is not an HTTP status", code)
		}
	}
	if r.BackoffMax > 0 && r.BackoffBase > r.BackoffMax {
		v.add(key+".backoff_max", "is less than backoff_base")
	}
}

func (v *validator) clusters() {
	names := map[string]nameUse{}
	for i, cl := range v.c.Clusters {
		key := fmt.Sprintf("clusters[%d]", i)
		if cl.Generated {
			key = "sidecar.app"
			for j, s := range v.c.Services {
				if OutboundPrefix+s.Name == cl.Name {
					key = fmt.Sprintf("services[%d]", j)
				}
			}
		}
		v.unique("cluster", names, key, cl.Name, cl.Generated)
		if len(cl.Endpoints) == 0 && len(cl.LabeledEndpoints) == 0 && cl.EndpointsFile == "" && cl.DNS == "" {
			if cl.Generated && cl.Name == InboundClusterName {
				v.add("sidecar.app", "required in sidecar mode: the local app's host:port")
			} else {
				v.add(key+".endpoints", "set endpoints, labeled_endpoints, endpoints_file or dns")
			}
		}
		for j, ep := range cl.Endpoints {
			if cl.Generated && cl.Name == InboundClusterName {
				v.address(key, ep)
				continue
			}
			v.address(fmt.Sprintf("%s.endpoints[%d]", key, j), ep)
		}
		for j, ep := range cl.LabeledEndpoints {
			v.address(fmt.Sprintf("%s.labeled_endpoints[%d].address", key, j), ep.Address)
			if ep.Weight < 0 {
				v.add(fmt.Sprintf("%s.labeled_endpoints[%d].weight", key, j), "must not be negative")
			}
		}
		if !slices.Contains(ClusterProtocols, cl.Protocol) && !(cl.Generated && cl.Name == InboundClusterName) {
			// The app cluster's comes from sidecar.app_protocol, reported there.
			v.add(key+".protocol", "unknown protocol %q; want one of %s", cl.Protocol, strings.Join(ClusterProtocols, ", "))
		}
		if !slices.Contains(LBPolicies, cl.LB) {
			v.add(key+".lb", "unknown lb %q; want one of %s", cl.LB, strings.Join(LBPolicies, ", "))
		}
		if cl.HashOn != "" && cl.HashOn != "client_ip" && (!strings.HasPrefix(cl.HashOn, "header:") || len(cl.HashOn) == len("header:")) {
			v.add(key+".hash_on", "unknown hash_on %q; want \"client_ip\" or \"header:NAME\"", cl.HashOn)
		}
		if t := cl.TLS; t != nil && !cl.Generated {
			if (t.Cert == "") != (t.Key == "") {
				v.add(key+".tls", "set both cert and key, or neither")
			}
			v.file(key+".tls.ca", t.CA, false)
			v.file(key+".tls.cert", t.Cert, false)
			v.file(key+".tls.key", t.Key, false)
		}
		if !cl.Generated {
			v.file(key+".endpoints_file", cl.EndpointsFile, false)
		}
		if o := cl.Outlier; o != nil && (o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100) {
			v.add(key+".outlier.max_ejection_percent", "must be between 0 and 100")
		}
		if h := cl.HealthCheck; h != nil && !strings.HasPrefix(h.Path, "/") {
			v.add(key+".health_check.path", "must start with \"/\"")
		}
	}
}

func (v *validator) sidecar(plugins map[string]bool) {
	c := v.c
	if c.Mode == "sidecar" {
		switch pa := c.Sidecar.PeerAuthentication; {
		case !slices.Contains(PeerAuthentications, pa):
			v.add("sidecar.peer_authentication", "unknown value %q; want \"strict\", \"permissive\" or \"disable\"", pa)
		case pa != "disable" && c.Identity == nil:
			// Without certificates the inbound side could only serve plain
			// text while /config claimed mTLS: refuse rather than pretend.
			how := "the default"
			if c.defined("sidecar", "peer_authentication") {
				how = "set here"
			}
			v.add("sidecar.peer_authentication", "%q (%s) needs an [identity] (cert, key, trust_bundle) to present and verify certificates; "+
				"add one, or set peer_authentication = \"disable\" to accept plain text on the inbound side", pa, how)
		}
		if !slices.Contains(AppProtocols, c.Sidecar.AppProtocol) {
			v.add("sidecar.app_protocol", "unknown app protocol %q; want one of %s", c.Sidecar.AppProtocol, strings.Join(AppProtocols, ", "))
		}
	}
	if id := c.Identity; id != nil {
		v.file("identity.cert", id.Cert, true)
		v.file("identity.key", id.Key, true)
		v.file("identity.trust_bundle", id.TrustBundle, true)
	}
	names := map[string]bool{}
	for i, s := range c.Services {
		key := fmt.Sprintf("services[%d]", i)
		if s.Name == "" {
			v.add(key+".name", "required")
		} else if names[s.Name] {
			v.add(key+".name", "duplicate service name %q", s.Name)
		}
		names[s.Name] = true
		v.file(key+".endpoints_file", s.EndpointsFile, false)
	}
	for i, a := range c.Authorization {
		key := fmt.Sprintf("authorization[%d]", i)
		switch a.Action {
		case "ALLOW", "DENY":
		case "CUSTOM":
			if a.Plugin == "" {
				v.add(key+".plugin", "required when action is \"CUSTOM\"")
			} else if !plugins[a.Plugin] {
				v.add(key+".plugin", "unknown plugin %q", a.Plugin)
			}
		default:
			v.add(key+".action", "unknown action %q; want \"ALLOW\", \"DENY\" or \"CUSTOM\"", a.Action)
		}
		for j, h := range a.When {
			v.headerMatch(fmt.Sprintf("%s.when[%d]", key, j), h)
		}
		for _, f := range []struct {
			key  string
			vals []string
		}{{"from.principals", a.From.Principals}, {"from.namespaces", a.From.Namespaces}, {"to.paths", a.To.Paths}} {
			for j, val := range f.vals {
				if !istioPattern(val) {
					v.add(fmt.Sprintf("%s.%s[%d]", key, f.key, j), "bad pattern %q: \"*\" may stand alone or start or end a value, as Istio allows", val)
				}
			}
		}
		for j, m := range a.To.Methods {
			if !methodToken.MatchString(m) {
				v.add(fmt.Sprintf("%s.to.methods[%d]", key, j), "bad method %q (methods are upper case, as \"GET\")", m)
			}
		}
	}
}

// pathPolicy checks the three path keys of [server] or a listener.
func (v *validator) pathPolicy(key, norm, slashes, params string) {
	for _, k := range []struct {
		name, val string
		want      []string
	}{
		{"path_normalization", norm, PathNormalizations},
		{"path_with_escaped_slashes", slashes, PathEscapedSlashes},
		{"path_parameters", params, PathParameterActions},
	} {
		if k.val != "" && !slices.Contains(k.want, k.val) { // "" is the default, in a Config built in code
			v.add(key+"."+k.name, "unknown value %q; want one of %s", k.val, strings.Join(k.want, ", "))
		}
	}
}

// ifDiffers is v, or "" (nothing to check) when it is the inherited one.
func ifDiffers(v, inherited string) string {
	if v == inherited {
		return ""
	}
	return v
}

// resolvePaths makes every file path in the config absolute against the
// config file's directory, once, so that no consumer has to remember to.
func (c *Config) resolvePaths() {
	res := func(p *string) { *p = c.ResolvePath(*p) }
	for i := range c.Listeners {
		if t := c.Listeners[i].TLS; t != nil {
			res(&t.Cert)
			res(&t.Key)
			res(&t.ClientCA)
		}
	}
	for i := range c.Plugins {
		if w := c.Plugins[i].Wasm; !strings.HasPrefix(w, "builtin:") && !strings.Contains(w, "://") {
			res(&c.Plugins[i].Wasm)
		}
	}
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		res(&cl.EndpointsFile)
		if t := cl.TLS; t != nil {
			res(&t.CA)
			res(&t.Cert)
			res(&t.Key)
		}
	}
	for i := range c.Services {
		res(&c.Services[i].EndpointsFile)
	}
	if id := c.Identity; id != nil {
		res(&id.Cert)
		res(&id.Key)
		res(&id.TrustBundle)
	}
	res(&c.AccessLog.Path)
}

// nodeMetadata checks that node.metadata holds what a protobuf Struct can
// (and filters get): strings, numbers, booleans and tables of them.
func (v *validator) nodeMetadata(key string, md map[string]any) {
	for k, val := range md {
		switch x := val.(type) {
		case string, bool, int64, float64:
		case map[string]any:
			v.nodeMetadata(key+"."+k, x)
		case []any:
			v.add(key+"."+k, "an array is not supported; use a string, number, boolean or table")
		default:
			v.add(key+"."+k, "a date or time is not supported; use a string, number, boolean or table")
		}
	}
}
