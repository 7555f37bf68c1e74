// Package config turns a sluice TOML file into a validated, typed, immutable
// Config. The TOML shape is the public contract described in DESIGN.md; each
// field's comment states its default. Load applies defaults and the mode
// presets, then Validate reports every problem with file, line and key.
package config

// Config is one immutable snapshot of the whole configuration. The runtime
// never mutates a Config after Load returns it; a reload builds a new one.
type Config struct {
	// Mode is "edge" (default) or "sidecar"; the --mode flag overrides it.
	Mode string `toml:"mode" json:"mode"`

	Admin         Admin           `toml:"admin" json:"admin"`
	Server        Server          `toml:"server" json:"server"`
	Listeners     []Listener      `toml:"listeners" json:"listeners"`
	Plugins       []Plugin        `toml:"plugins" json:"plugins"`
	Routes        []Route         `toml:"routes" json:"routes"`
	Clusters      []Cluster       `toml:"clusters" json:"clusters"`
	SharedStore   SharedStore     `toml:"shared_store" json:"shared_store"`
	Wasm          Wasm            `toml:"wasm" json:"wasm"`
	Identity      *Identity       `toml:"identity" json:"identity,omitempty"`
	Sidecar       *Sidecar        `toml:"sidecar" json:"sidecar,omitempty"`
	Services      []Service       `toml:"services" json:"services,omitempty"`
	Authorization []Authorization `toml:"authorization" json:"authorization,omitempty"`
	AccessLog     AccessLog       `toml:"access_log" json:"access_log"`
	Node          Node            `toml:"node" json:"node,omitzero"`

	// Path is the file the config was read from (not a TOML key).
	Path string `toml:"-" json:"path"`

	// src and raw remember the file, for error lines and for telling an
	// unset key from an explicit zero; nil for a Config built in code.
	src *sourceIndex
	raw map[string]any
}

// Admin is the admin HTTP listener.
type Admin struct {
	// Address defaults to "127.0.0.1:9901"; "" after defaults means disabled
	// only when Disabled is set.
	Address  string `toml:"address" json:"address"`
	Disabled bool   `toml:"disabled" json:"disabled,omitempty"`
}

// Server holds process-wide settings that need a restart to change.
type Server struct {
	// DrainTimeout bounds graceful shutdown; default 15s.
	DrainTimeout Duration `toml:"drain_timeout" json:"drain_timeout"`
	// WatchConfig reloads the config when the file changes; default true.
	WatchConfig *bool `toml:"watch_config" json:"watch_config,omitempty"`
	// MaxMirrorsInFlight bounds the mirrored (shadow) requests in flight
	// at once, over every route; a copy past it is dropped and counted in
	// sluice_http_mirror_dropped_total. Each holds its request's body (up
	// to the listener's max_request_body_buffer) until it ends. Default 128.
	MaxMirrorsInFlight int `toml:"max_mirrors_in_flight" json:"max_mirrors_in_flight"`
	// PathNormalization, PathWithEscapedSlashes and PathParameters are
	// every HTTP listener's path handling (Istio's mesh-wide
	// meshConfig.pathNormalization); a [[listeners]] entry may override
	// them (Envoy's per connection manager settings). See Listener.
	PathNormalization      string `toml:"path_normalization" json:"path_normalization"`
	PathWithEscapedSlashes string `toml:"path_with_escaped_slashes" json:"path_with_escaped_slashes"`
	PathParameters         string `toml:"path_parameters" json:"path_parameters"`
	// MaxConnections caps the downstream connections open at once over
	// every data-plane listener (HTTP and TCP; not admin, not HTTP/3's
	// UDP), as Envoy's global_downstream_max_connections: a connection
	// past it is closed as soon as it is accepted and counted in
	// sluice_downstream_cx_overflow_total. Default 0: half the process's
	// file-descriptor limit (RLIMIT_NOFILE), since a proxied connection
	// usually holds an upstream one too, so a flood meets the cap before
	// the descriptor table runs out.
	MaxConnections int `toml:"max_connections" json:"max_connections"`
}

// Listener is one downstream listener.
type Listener struct {
	Name    string `toml:"name" json:"name"`
	Address string `toml:"address" json:"address"`
	// Protocols: http1, h2 (TLS, ALPN), h2c, h3 (TLS over UDP on the same
	// port), tcp. Default ["http1", "h2c"] without TLS, ["http1", "h2"] with.
	Protocols []string `toml:"protocols" json:"protocols"`
	TLS       *TLS     `toml:"tls" json:"tls,omitempty"`
	// Routes limits the listener to these route names; default all routes
	// written in the file (a mode preset's routes go only to the listeners
	// it generates). An empty list means none.
	Routes []string `toml:"routes" json:"routes,omitempty"`
	// Cluster is the upstream of a tcp listener.
	Cluster string `toml:"cluster" json:"cluster,omitempty"`
	// Plugins are network filters for a tcp listener, HTTP filters that run
	// before the route's own for an HTTP listener.
	Plugins []string `toml:"plugins" json:"plugins,omitempty"`

	// ReadHeaderTimeout default 10s; IdleTimeout default 60s;
	// MaxHeaderBytes default 64KiB; MaxConcurrentStreams default 250.
	ReadHeaderTimeout    Duration `toml:"read_header_timeout" json:"read_header_timeout"`
	IdleTimeout          Duration `toml:"idle_timeout" json:"idle_timeout"`
	MaxHeaderBytes       Size     `toml:"max_header_bytes" json:"max_header_bytes"`
	MaxConcurrentStreams uint32   `toml:"max_concurrent_streams" json:"max_concurrent_streams"`
	// InitialStreamWindowSize and InitialConnectionWindowSize are the
	// HTTP/2 receive windows, as Envoy's http2_protocol_options of the same
	// names: request body bytes one stream, and all of a connection's
	// streams, may have in flight and buffered. Defaults 256KiB and 1MiB;
	// each between 64KiB-1 (65535) and 2GiB-1.
	InitialStreamWindowSize     Size `toml:"initial_stream_window_size" json:"initial_stream_window_size"`
	InitialConnectionWindowSize Size `toml:"initial_connection_window_size" json:"initial_connection_window_size"`
	// StreamIdleTimeout ends a stream (request and response) that makes no
	// progress either way for this long, as Envoy's stream_idle_timeout:
	// no byte read from or written to the client or the upstream. Nothing
	// sent to the client yet: a 408 when the client stalled in its request
	// body, else a 504; otherwise the stream is reset (HTTP/1.1: the
	// connection closed). A write to a client that stops reading ends the
	// stream the same way. Default 5m; "0s" disables it; a route's
	// stream_idle_timeout wins over the listener's.
	StreamIdleTimeout *Duration `toml:"stream_idle_timeout" json:"stream_idle_timeout,omitempty"`
	// MaxRequestBodyBuffer bounds a buffered request body (413 past it);
	// default 1MiB. It also bounds the body kept for retries.
	MaxRequestBodyBuffer Size `toml:"max_request_body_buffer" json:"max_request_body_buffer"`
	// Direction is "inbound" or "outbound" for sidecar listeners, "" otherwise.
	Direction string `toml:"direction" json:"direction,omitempty"`

	// The request path is normalized when a request arrives, before
	// filters, routing and authorization see it, and the normalized path is
	// what goes upstream (the query is untouched). An invalid path ("%00"
	// or another control byte, a bad escape, not starting with "/"; unless
	// NONE, ".." above the root) is a 400.
	// Each key defaults to the [server] key of the same name.
	//
	// PathNormalization is Istio's option: "NONE" (the path as received),
	// "BASE" (RFC 3986: "." and ".." segments removed, escapes of
	// unreserved characters such as %2e and %41 decoded, other escapes
	// upper-cased, "\" made "/", bytes a path may not hold such as a space
	// or non-ASCII escaped), "MERGE_SLASHES" (BASE, then "//" merged)
	// or "DECODE_AND_MERGE_SLASHES" (MERGE_SLASHES after decoding %2F and
	// %5C: path_with_escaped_slashes "KEEP_UNCHANGED" then means
	// "UNESCAPE_AND_FORWARD"; the other actions keep their meaning).
	// Default "MERGE_SLASHES", one step stricter than Istio's BASE: BASE
	// lets "//admin" past a rule on "/admin".
	PathNormalization string `toml:"path_normalization" json:"path_normalization"`
	// PathWithEscapedSlashes is Envoy's path_with_escaped_slashes_action
	// for %2F and %5C: "KEEP_UNCHANGED" (default, Envoy's), "REJECT_REQUEST"
	// (400), "UNESCAPE_AND_REDIRECT" (307 to the unescaped, normalized path;
	// gRPC gets INTERNAL) or "UNESCAPE_AND_FORWARD". Beyond Envoy, a kept
	// escaped slash that would form a "." or ".." segment (or, when
	// slashes are merged, an empty one) once unescaped ("/a/..%2Fadmin") is refused with a 400: an app that
	// decodes it would resolve a path that routing and authorization never
	// saw.
	PathWithEscapedSlashes string `toml:"path_with_escaped_slashes" json:"path_with_escaped_slashes"`
	// PathParameters is what ";" parameters in a path segment become (RFC
	// 3986 leaves them to the app; Tomcat, Jetty and Spring drop them before
	// resolving "..", so "/public/..;/admin" is their "/admin"): "STRIP"
	// (default: removed from each segment before dot segments are resolved,
	// so routing, authorization and the app all see "/admin"), "KEEP"
	// (";" is a plain character, as Envoy and Istio treat it) or "REJECT"
	// (a path with ";" is a 400).
	PathParameters string `toml:"path_parameters" json:"path_parameters"`
	// Generated marks a listener made by a mode preset, not the file.
	Generated bool `toml:"-" json:"generated,omitempty"`
}

// TLS is a certificate pair and an optional client CA for mTLS.
type TLS struct {
	Cert     string `toml:"cert" json:"cert"`
	Key      string `toml:"key" json:"key"`
	ClientCA string `toml:"client_ca" json:"client_ca,omitempty"`
	// RequireClientCert defaults to true when ClientCA is set.
	RequireClientCert *bool `toml:"require_client_cert" json:"require_client_cert,omitempty"`
}

// Plugin is one Wasm filter configuration.
type Plugin struct {
	Name string `toml:"name" json:"name"`
	// Wasm is where the module comes from: "builtin:NAME", a path to a
	// .wasm file or file:///abs/path (watched), oci://registry/repo:tag or
	// oci://registry/repo@sha256:HEX, or https://... (with SHA256).
	// Remote modules are fetched in the background and cached by digest.
	Wasm string `toml:"wasm" json:"wasm"`
	// SHA256 pins the module: its own SHA-256 for https:// (required) and
	// files, the image's manifest digest for oci:// (as @sha256: would).
	SHA256 string `toml:"sha256" json:"sha256,omitempty"`
	// PullPolicy is "IfNotPresent" (the default: use the cached module) or
	// "Always" (fetch again on every reload); default Always for an oci://
	// reference tagged latest, as Istio does.
	PullPolicy string `toml:"pull_policy" json:"pull_policy,omitempty"`
	// Config is passed to proxy_on_configure as JSON; ConfigRaw verbatim.
	Config    map[string]any `toml:"config" json:"config,omitempty"`
	ConfigRaw string         `toml:"config_raw" json:"config_raw,omitempty"`
	// Failure is "closed" (default: 503 local reply) or "open" (skip).
	Failure  string         `toml:"failure" json:"failure"`
	RootID   string         `toml:"root_id" json:"root_id,omitempty"`
	VMID     string         `toml:"vm_id" json:"vm_id,omitempty"`
	VMConfig map[string]any `toml:"vm_config" json:"vm_config,omitempty"`
	// VMConfigRaw is passed to proxy_on_vm_start verbatim.
	VMConfigRaw string `toml:"vm_config_raw" json:"vm_config_raw,omitempty"`
	VM          VM     `toml:"vm" json:"vm"`
}

// VM bounds a plugin's instances.
type VM struct {
	// Instances is the most instances kept; default GOMAXPROCS.
	Instances int `toml:"instances" json:"instances"`
	// MemoryLimit per instance; default 64MiB.
	MemoryLimit Size `toml:"memory_limit" json:"memory_limit"`
	// CallTimeout is the deadline of one callback; default 100ms.
	CallTimeout Duration `toml:"call_timeout" json:"call_timeout"`
	// DoneTimeout is how long an unloaded plugin whose proxy_on_done
	// returned false has to call proxy_done before its root context is
	// deleted anyway; default 10s.
	DoneTimeout Duration `toml:"done_timeout" json:"done_timeout"`
	// RestartBackoff: an instance that traps, runs out of memory or past
	// its deadline is replaced at once; after the second failure in a row
	// the next replacement waits this long, doubling per failure up to
	// 30s, so a plugin that fails on every request cannot crash-loop.
	// Default 1s (Envoy's FAIL_RELOAD base).
	RestartBackoff Duration `toml:"restart_backoff" json:"restart_backoff"`
}

// Wasm holds engine-wide settings.
type Wasm struct {
	// CacheDir is wazero's compilation cache; default $XDG_CACHE_HOME/sluice
	// (or ~/.cache/sluice); "off" disables it.
	CacheDir string `toml:"cache_dir" json:"cache_dir"`
	// MaxModuleBytes caps a plugin's .wasm file; default 64MiB. A bigger
	// file (or one that is not a regular file) is refused before it is
	// read, at start, on reload and by `sluice validate`.
	MaxModuleBytes Size `toml:"max_module_bytes" json:"max_module_bytes"`
	// InsecureRegistries may serve oci:// modules over plain HTTP, as
	// "host:port" (say "127.0.0.1:5000"); every other registry must use
	// HTTPS. Fetched modules are cached by digest under CacheDir/modules
	// (in memory only when CacheDir is "off").
	InsecureRegistries []string `toml:"insecure_registries" json:"insecure_registries,omitempty"`
}

// SharedStore backs proxy_{get,set}_shared_data and rate limits.
type SharedStore struct {
	// Kind is "memory" (default) or "redis".
	Kind  string `toml:"kind" json:"kind"`
	Redis Redis  `toml:"redis" json:"redis"`
}

// Redis is a Redis server address.
type Redis struct {
	Address  string   `toml:"address" json:"address"`
	Password string   `toml:"password" json:"-"`
	DB       int      `toml:"db" json:"db"`
	Timeout  Duration `toml:"timeout" json:"timeout"`
}

// Match selects requests for a route. Every set field must match.
type Match struct {
	// Hosts: exact names or "*.example.com" wildcards, compared without
	// the request's port and case-insensitively; a host written with a
	// port matches only that port. Empty (or "*") means any.
	Hosts      []string      `toml:"hosts" json:"hosts,omitempty"`
	Path       string        `toml:"path" json:"path,omitempty"`
	PathPrefix string        `toml:"path_prefix" json:"path_prefix,omitempty"`
	PathRegex  string        `toml:"path_regex" json:"path_regex,omitempty"`
	Methods    []string      `toml:"methods" json:"methods,omitempty"`
	Headers    []HeaderMatch `toml:"headers" json:"headers,omitempty"`
	Query      []QueryMatch  `toml:"query" json:"query,omitempty"`
}

// HeaderMatch matches one header: exactly one of Exact, Regex, Present,
// Absent is set.
type HeaderMatch struct {
	Name    string `toml:"name" json:"name"`
	Exact   string `toml:"exact" json:"exact,omitempty"`
	Regex   string `toml:"regex" json:"regex,omitempty"`
	Present bool   `toml:"present" json:"present,omitempty"`
	Absent  bool   `toml:"absent" json:"absent,omitempty"`
}

// QueryMatch matches one query parameter like HeaderMatch.
type QueryMatch = HeaderMatch

// Route sends matching requests through plugins to backends.
type Route struct {
	Name    string   `toml:"name" json:"name"`
	Match   Match    `toml:"match" json:"match"`
	Plugins []string `toml:"plugins" json:"plugins,omitempty"`
	// Timeout is the total time for the request, retries included;
	// default 15s; "0s" disables it.
	Timeout Duration `toml:"timeout" json:"timeout"`
	// Retry defaults to Istio's: 2 attempts on connect-failure and
	// refused-stream.
	Retry *Retry `toml:"retry" json:"retry,omitempty"`
	// StreamIdleTimeout, when set, replaces the listener's
	// stream_idle_timeout for this route's streams ("0s" disables it);
	// default: the listener's (Envoy's route idle_timeout).
	StreamIdleTimeout *Duration `toml:"stream_idle_timeout" json:"stream_idle_timeout,omitempty"`
	// StripPrefix removes Match.PathPrefix before forwarding (Kong's
	// strip_path); PrefixRewrite replaces it.
	StripPrefix   bool      `toml:"strip_prefix" json:"strip_prefix,omitempty"`
	PrefixRewrite string    `toml:"prefix_rewrite" json:"prefix_rewrite,omitempty"`
	HostRewrite   string    `toml:"host_rewrite" json:"host_rewrite,omitempty"`
	Backends      []Backend `toml:"backends" json:"backends"`
	// Mirror sends a copy of each request to this cluster, fire and
	// forget, as Envoy's request_mirror_policies and Istio's mirror: the
	// copy's Host gets a "-shadow" suffix, its response is discarded, and
	// it never delays or fails the request. A request body is mirrored
	// when it fits max_request_body_buffer (the retry buffer), once read
	// in full; a larger one is not mirrored.
	Mirror string `toml:"mirror" json:"mirror,omitempty"`
	// MirrorPercentage is the share of requests mirrored, 0 to 100 (as
	// Istio's mirrorPercentage); default 100 when mirror is set.
	MirrorPercentage *float64       `toml:"mirror_percentage" json:"mirror_percentage,omitempty"`
	Metadata         map[string]any `toml:"metadata" json:"metadata,omitempty"`
	// Generated marks a route made by a mode preset, not the file.
	Generated bool `toml:"-" json:"generated,omitempty"`
}

// Retry is a route's retry policy with Istio's meanings.
type Retry struct {
	// Attempts is the number of retries after the first try.
	Attempts      int      `toml:"attempts" json:"attempts"`
	PerTryTimeout Duration `toml:"per_try_timeout" json:"per_try_timeout"`
	// On: 5xx, gateway-error, reset, connect-failure, refused-stream,
	// retriable-status-codes.
	On                   []string `toml:"on" json:"on"`
	RetriableStatusCodes []int    `toml:"retriable_status_codes" json:"retriable_status_codes,omitempty"`
	// BackoffBase default 25ms; BackoffMax default 250ms (Envoy's).
	BackoffBase Duration `toml:"backoff_base" json:"backoff_base"`
	BackoffMax  Duration `toml:"backoff_max" json:"backoff_max"`
}

// Backend is one weighted choice of a route; Subset narrows the cluster to
// endpoints with those labels; Headers makes it a header-matched choice
// taken before the weighted ones.
type Backend struct {
	Cluster string `toml:"cluster" json:"cluster"`
	// Weight defaults to 1 when no backend of the route sets one (an even
	// split); once any does, an unset weight is 0.
	Weight  int               `toml:"weight" json:"weight"`
	Subset  map[string]string `toml:"subset" json:"subset,omitempty"`
	Headers []HeaderMatch     `toml:"headers" json:"headers,omitempty"`
}

// Cluster is a named group of upstream endpoints.
type Cluster struct {
	Name string `toml:"name" json:"name"`
	// Endpoints are "host:port" strings; a host that is a DNS name is
	// re-resolved every DNSRefresh (default 30s).
	Endpoints []string `toml:"endpoints" json:"endpoints,omitempty"`
	// LabeledEndpoints carry labels for subsets.
	LabeledEndpoints []Endpoint `toml:"labeled_endpoints" json:"labeled_endpoints,omitempty"`
	EndpointsFile    string     `toml:"endpoints_file" json:"endpoints_file,omitempty"`
	DNS              string     `toml:"dns" json:"dns,omitempty"`
	DNSRefresh       Duration   `toml:"dns_refresh" json:"dns_refresh"`
	// Protocol: http1 (default), h2 (TLS), h2c, h3, or downstream: each
	// request in the HTTP version it came in with (HTTP/1.x over http1,
	// HTTP/2 and HTTP/3 over h2, or h2c without tls).
	Protocol string `toml:"protocol" json:"protocol"`
	// LB: round_robin (default), least_request, random, ring_hash; the
	// clusters of sidecar [[services]] default to least_request, as Istio's.
	LB string `toml:"lb" json:"lb"`
	// HashOn for ring_hash: "header:NAME" or "client_ip" (default).
	HashOn string `toml:"hash_on" json:"hash_on,omitempty"`
	// ConnectTimeout bounds an upstream connect; default 5s.
	ConnectTimeout Duration       `toml:"connect_timeout" json:"connect_timeout"`
	TLS            *UpstreamTLS   `toml:"tls" json:"tls,omitempty"`
	Limits         Limits         `toml:"limits" json:"limits"`
	Outlier        *Outlier       `toml:"outlier" json:"outlier,omitempty"`
	HealthCheck    *HealthCheck   `toml:"health_check" json:"health_check,omitempty"`
	Metadata       map[string]any `toml:"metadata" json:"metadata,omitempty"`
	// Generated marks a cluster made by a mode preset, not the file.
	Generated bool `toml:"-" json:"generated,omitempty"`
}

// Endpoint is an address with labels (for subsets).
type Endpoint struct {
	Address string            `toml:"address" json:"address"`
	Labels  map[string]string `toml:"labels" json:"labels,omitempty"`
	Weight  int               `toml:"weight" json:"weight,omitempty"`
}

// UpstreamTLS configures TLS towards a cluster.
type UpstreamTLS struct {
	CA                 string `toml:"ca" json:"ca,omitempty"`
	Cert               string `toml:"cert" json:"cert,omitempty"`
	Key                string `toml:"key" json:"key,omitempty"`
	ServerName         string `toml:"server_name" json:"server_name,omitempty"`
	InsecureSkipVerify bool   `toml:"insecure_skip_verify" json:"insecure_skip_verify,omitempty"`
	// Identity is the SPIFFE ID (URI SAN) the upstream must present; set
	// from a sidecar [[services]] entry's identity.
	Identity string `toml:"identity" json:"identity,omitempty"`
}

// Limits are a cluster's connection pool and circuit breaker settings.
// Zero means the default (Envoy's: 1024 for connections, pending, requests
// and 3 for retries; unlimited requests per connection).
type Limits struct {
	MaxConnections           int `toml:"max_connections" json:"max_connections"`
	MaxPendingRequests       int `toml:"max_pending_requests" json:"max_pending_requests"`
	MaxRequests              int `toml:"max_requests" json:"max_requests"`
	MaxRetries               int `toml:"max_retries" json:"max_retries"`
	MaxRequestsPerConnection int `toml:"max_requests_per_connection" json:"max_requests_per_connection"`
	// IdleTimeout closes idle upstream connections; default 90s.
	IdleTimeout Duration `toml:"idle_timeout" json:"idle_timeout"`
}

// Outlier is passive outlier detection, as Istio's outlierDetection, with
// its defaults: Consecutive5xx 5, Interval 10s, BaseEjectionTime 30s,
// MaxEjectionPercent 10.
type Outlier struct {
	Consecutive5xx     int      `toml:"consecutive_5xx" json:"consecutive_5xx"`
	Interval           Duration `toml:"interval" json:"interval"`
	BaseEjectionTime   Duration `toml:"base_ejection_time" json:"base_ejection_time"`
	MaxEjectionPercent int      `toml:"max_ejection_percent" json:"max_ejection_percent"`
}

// HealthCheck is an active HTTP health check. Defaults: Path "/",
// Interval 10s, Timeout 1s, HealthyThreshold 2, UnhealthyThreshold 3;
// ExpectedStatuses empty means any 2xx.
type HealthCheck struct {
	Path               string   `toml:"path" json:"path"`
	Interval           Duration `toml:"interval" json:"interval"`
	Timeout            Duration `toml:"timeout" json:"timeout"`
	HealthyThreshold   int      `toml:"healthy_threshold" json:"healthy_threshold"`
	UnhealthyThreshold int      `toml:"unhealthy_threshold" json:"unhealthy_threshold"`
	ExpectedStatuses   []int    `toml:"expected_statuses" json:"expected_statuses,omitempty"`
}

// AccessLog configures the per-request log line.
type AccessLog struct {
	// Disabled turns the access log off; Path is a file, default stderr.
	Disabled bool   `toml:"disabled" json:"disabled,omitempty"`
	Path     string `toml:"path" json:"path,omitempty"`
	// FlushInterval is how long lines may wait in the access log's buffer
	// (256KiB, written out when full) before they are written; default
	// 1s, Envoy's. The buffer is also written out on shutdown. A write(2)
	// per request cost about a tenth of the proxy's requests per second.
	FlushInterval Duration `toml:"flush_interval" json:"flush_interval,omitempty"`
}

// Identity is this workload's certificate (sidecar mode).
type Identity struct {
	Cert        string `toml:"cert" json:"cert"`
	Key         string `toml:"key" json:"key"`
	TrustBundle string `toml:"trust_bundle" json:"trust_bundle"`
}

// Node describes this proxy as Envoy's bootstrap node does; filters read
// it as the node.id, node.cluster and node.metadata.KEY properties (Istio's
// plugins read Istio's keys there and refuse to configure without them).
// A restart applies a change.
type Node struct {
	// ID is node.id. Default "" at the edge; in sidecar mode Istio's
	// "sidecar~IP~NAME.NAMESPACE~NAMESPACE.svc.cluster.local".
	ID string `toml:"id" json:"id,omitempty"`
	// Cluster is node.cluster. Default "" at the edge; in sidecar mode
	// Istio's service cluster, "WORKLOAD_NAME.NAMESPACE".
	Cluster string `toml:"cluster" json:"cluster,omitempty"`
	// Metadata is node.metadata: strings, numbers, booleans and tables of
	// them. In sidecar mode the keys Istio's plugins read are filled unless
	// set here: from ISTIO_META_<KEY> environment variables as Istio's agent
	// does, else NAME ($POD_NAME, else the host name), NAMESPACE (the
	// [identity] SPIFFE ID's, else $POD_NAMESPACE, else "default"),
	// SERVICE_ACCOUNT (the SPIFFE ID's), WORKLOAD_NAME (NAME), LABELS ({}),
	// MESH_ID (the trust domain, else "cluster.local"), CLUSTER_ID
	// ("Kubernetes"), ISTIO_VERSION ("1.24.0") and INSTANCE_IPS
	// ($INSTANCE_IP, else this host's addresses).
	Metadata map[string]any `toml:"metadata" json:"metadata,omitempty"`
}

// Sidecar is the sugar that builds inbound and outbound listeners.
type Sidecar struct {
	// App is the local app's host:port; required in sidecar mode.
	App string `toml:"app" json:"app"`
	// Inbound is where peers connect, default "0.0.0.0:15006" (every
	// address, IPv4 and IPv6, as Istio's inbound port); Outbound is where
	// the app connects, default "127.0.0.1:15001".
	Inbound  string `toml:"inbound" json:"inbound"`
	Outbound string `toml:"outbound" json:"outbound"`
	// PeerAuthentication is "strict" (default: peers must present a
	// certificate from the trust bundle), "permissive" (mTLS and plain
	// text on the same port) or "disable" (plain text only, Istio's
	// DISABLE). "strict" and "permissive" need an [identity]: a sidecar
	// without one is refused unless the file says "disable".
	PeerAuthentication string `toml:"peer_authentication" json:"peer_authentication"`
	// AppProtocol is how the inbound side talks to the app (Istio's
	// appProtocol): "http1" (default), "h2c" (HTTP/2 without TLS) or
	// "grpc" (gRPC, which rides h2c).
	AppProtocol string `toml:"app_protocol" json:"app_protocol"`
}

// Service is a destination the app may call through the outbound listener.
type Service struct {
	// Name is matched against Host / :authority, with or without a port.
	Name string `toml:"name" json:"name"`
	// Hosts are more names (exact or "*." wildcards) routed to the service.
	Hosts         []string `toml:"hosts" json:"hosts,omitempty"`
	Endpoints     []string `toml:"endpoints" json:"endpoints,omitempty"`
	DNS           string   `toml:"dns" json:"dns,omitempty"`
	EndpointsFile string   `toml:"endpoints_file" json:"endpoints_file,omitempty"`
	Identity      string   `toml:"identity" json:"identity,omitempty"`
	// Protocol defaults to "h2" with an [identity] (one multiplexed
	// connection per peer; peers' inbound listeners offer it by ALPN), else
	// "http1". "downstream" keeps the app's HTTP version: HTTP/1.1 over
	// pooled mTLS connections (cheaper with Go's HTTP/2), HTTP/2 and gRPC
	// over h2.
	Protocol string `toml:"protocol" json:"protocol,omitempty"`
	// Timeout is as a route's: default 15s, "0s" disables it.
	Timeout Duration `toml:"timeout" json:"timeout"`
	Retry   *Retry   `toml:"retry" json:"retry,omitempty"`
	Limits  Limits   `toml:"circuit_breaker" json:"circuit_breaker"`
	Outlier *Outlier `toml:"outlier" json:"outlier,omitempty"`
	// Mirror names another [[services]] entry (or a [[clusters]] entry)
	// that gets a copy of each request, as a route's mirror does;
	// MirrorPercentage as a route's.
	Mirror           string   `toml:"mirror" json:"mirror,omitempty"`
	MirrorPercentage *float64 `toml:"mirror_percentage" json:"mirror_percentage,omitempty"`
	// LB defaults to "least_request", Istio's default (edge clusters
	// default to "round_robin").
	LB string `toml:"lb" json:"lb,omitempty"`
}

// Authorization is one Istio AuthorizationPolicy rule on the inbound side.
type Authorization struct {
	// Action is "ALLOW" (default), "DENY" or "CUSTOM" (Plugin decides).
	Action string        `toml:"action" json:"action"`
	Plugin string        `toml:"plugin" json:"plugin,omitempty"`
	From   AuthFrom      `toml:"from" json:"from"`
	To     AuthTo        `toml:"to" json:"to"`
	When   []HeaderMatch `toml:"when" json:"when,omitempty"`
}

// AuthFrom names sources.
type AuthFrom struct {
	Principals []string `toml:"principals" json:"principals,omitempty"`
	Namespaces []string `toml:"namespaces" json:"namespaces,omitempty"`
}

// AuthTo names operations.
type AuthTo struct {
	Methods []string `toml:"methods" json:"methods,omitempty"`
	Paths   []string `toml:"paths" json:"paths,omitempty"`
}
