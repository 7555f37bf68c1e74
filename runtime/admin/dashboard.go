package admin

import (
	"bufio"
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stats"
)

// The dashboard is plain HTML, CSS and JavaScript embedded in the binary:
// no build step and nothing fetched from elsewhere, so it works on a
// machine with no internet and cannot be changed by a third party's CDN.
//
//go:embed dashboard
var dashboardFiles embed.FS

var dashboardPage = template.Must(template.ParseFS(dashboardFiles, "dashboard/index.html"))

// endpoint is one line of the index at GET /.
type endpoint struct {
	Method, Path, About string
}

// endpoints is the index GET / shows (the dashboard's list, and the text
// a non-browser client gets), in the order a person looks for them.
var endpoints = []endpoint{
	{"GET", "/", "this index; in a browser, the live dashboard"},
	{"GET", "/ready", "200 once listeners are up and the config is loaded, 503 before"},
	{"GET", "/metrics", "Prometheus metrics (text exposition format)"},
	{"GET", "/summary", "request, error and upstream counters as JSON (the dashboard's rates)"},
	{"GET", "/config", "the effective config as JSON, secrets redacted"},
	{"GET", "/plugins", "each plugin: module, instances, memory, calls, call time, failures"},
	{"GET", "/clusters", "each cluster and its endpoints: health, ejections, active requests"},
	{"POST", "/config/reload", "re-read the config file; a bad file is refused and the old config keeps serving"},
	{"POST", "/plugins/reload", "re-read every plugin's .wasm"},
	{"GET", "/debug/pprof/", "Go's profiler (heap samples only after POST /heapprofiler?enable=y)"},
	{"POST", "/heapprofiler", "?enable=y|n: turn Go's heap profiler on or off (off at start)"},
}

// serveIndex answers GET /: the dashboard for a browser, a plain-text
// index of the endpoints for curl and scripts.
func serveIndex(w http.ResponseWriter, r *http.Request) {
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		var b strings.Builder
		b.WriteString("sluice admin (open this address in a browser for the dashboard)\n\n")
		for _, e := range endpoints {
			fmt.Fprintf(&b, "%-5s %-16s %s\n", e.Method, e.Path, e.About)
		}
		w.Write([]byte(b.String()))
		return
	}
	setDashboardHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	dashboardPage.Execute(w, struct{ Endpoints []endpoint }{endpoints})
}

// serveDashboardAsset serves the page's script and style sheet.
func serveDashboardAsset() http.Handler {
	sub, _ := fs.Sub(dashboardFiles, "dashboard")
	files := http.StripPrefix("/dashboard/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setDashboardHeaders(w)
		files.ServeHTTP(w, r)
	})
}

// setDashboardHeaders keeps the page to its own origin: scripts and
// fetches only from the admin listener, and no framing by another site
// (which could otherwise trick a click on the admin page).
func setDashboardHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
}

// summary is GET /summary: the counters the dashboard turns into rates
// (a rate needs two samples, so the page keeps the previous one), read
// from the same registry as /metrics.
type summary struct {
	// Time is when the counters were read, in Unix milliseconds.
	Time     int64            `json:"time_ms"`
	Requests int64            `json:"requests"`
	Errors   int64            `json:"errors"` // 5xx and requests that got no response
	Routes   []routeSummary   `json:"routes"`
	Clusters []clusterSummary `json:"clusters"`
}

type routeSummary struct {
	Name     string           `json:"name"`
	Requests int64            `json:"requests"`
	Errors   int64            `json:"errors"`
	ByClass  map[string]int64 `json:"by_class"`
}

type clusterSummary struct {
	Name      string `json:"name"`
	Requests  int64  `json:"requests"`
	Failed    int64  `json:"failed"`
	Ejections int64  `json:"ejections"`
}

// readSummary reads the registry's exposition back (one code path for
// both pages, so they cannot disagree) and keeps the families it needs.
func readSummary(reg *stats.Registry) summary {
	var page bytes.Buffer
	reg.WritePrometheus(&page)
	s := summary{Time: time.Now().UnixMilli()}
	routes := map[string]*routeSummary{}
	clusters := map[string]*clusterSummary{}
	cluster := func(name string) *clusterSummary {
		if clusters[name] == nil {
			clusters[name] = &clusterSummary{Name: name}
		}
		return clusters[name]
	}
	sc := bufio.NewScanner(&page)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, l, v, ok := parseSample(sc.Text())
		if !ok {
			continue
		}
		switch name {
		case "sluice_http_requests_total":
			r := routes[l["route"]]
			if r == nil {
				r = &routeSummary{Name: l["route"], ByClass: map[string]int64{}}
				routes[r.Name] = r
			}
			r.Requests += v
			r.ByClass[l["code_class"]] += v
			if l["code_class"] == "5xx" || l["code_class"] == "none" {
				r.Errors += v
			}
		case "sluice_upstream_rq_total":
			cluster(l["cluster"]).Requests += v
		case "sluice_upstream_rq_failed_total":
			cluster(l["cluster"]).Failed += v
		case "sluice_upstream_ejections_total":
			cluster(l["cluster"]).Ejections += v
		}
	}
	s.Routes = make([]routeSummary, 0, len(routes))
	for _, r := range routes {
		s.Routes = append(s.Routes, *r)
		s.Requests += r.Requests
		s.Errors += r.Errors
	}
	slices.SortFunc(s.Routes, func(a, b routeSummary) int { return strings.Compare(a.Name, b.Name) })
	s.Clusters = make([]clusterSummary, 0, len(clusters))
	for _, c := range clusters {
		s.Clusters = append(s.Clusters, *c)
	}
	slices.SortFunc(s.Clusters, func(a, b clusterSummary) int { return strings.Compare(a.Name, b.Name) })
	return s
}

// parseSample splits one line of the exposition the registry writes
// (`name{k="v",...} value`); comments and blank lines are not samples.
func parseSample(line string) (name string, labels map[string]string, v int64, ok bool) {
	sp := strings.LastIndexByte(line, ' ')
	if line == "" || line[0] == '#' || sp < 0 {
		return "", nil, 0, false
	}
	f, err := strconv.ParseFloat(line[sp+1:], 64)
	if err != nil {
		return "", nil, 0, false
	}
	labels = map[string]string{}
	name = line[:sp]
	if strings.HasSuffix(name, "}") {
		base, pairs, ok := stats.ParseLabeledName(name)
		if !ok {
			return "", nil, 0, false
		}
		name = base
		for i := 0; i+1 < len(pairs); i += 2 {
			labels[pairs[i]] = pairs[i+1]
		}
	}
	return name, labels, int64(f), true
}
