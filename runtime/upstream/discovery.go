package upstream

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// options are the manager's knobs that tests turn; production uses
// defaultOptions.
type options struct {
	// lookup resolves a DNS name to addresses.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// lookupSRV resolves an SRV name ("_http._tcp.svc.example").
	lookupSRV func(ctx context.Context, name string) ([]*net.SRV, error)
	// filePoll is how often an endpoints_file's mtime and size are checked.
	filePoll time.Duration
}

func defaultOptions() *options {
	return &options{
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
		lookupSRV: func(ctx context.Context, name string) ([]*net.SRV, error) {
			_, srvs, err := net.DefaultResolver.LookupSRV(ctx, "", "", name)
			return srvs, err
		},
		filePoll: time.Second,
	}
}

// source is one configured endpoint before resolution.
type source struct {
	host, port string
	labels     map[string]string
	weight     int
	srv        bool // host is an SRV name; targets give hosts and ports
}

func (s source) isName() bool {
	if s.srv {
		return true
	}
	_, err := netip.ParseAddr(s.host)
	return err != nil
}

// discovery keeps a cluster's host set current: static addresses once, DNS
// names every dns_refresh (all A/AAAA records, IPv4 preferred as Envoy's
// V4_PREFERRED: IPv6 only when a name has no IPv4 address), and an
// endpoints_file whenever its mtime or size changes.
//
// dns = "_http._tcp.svc.example" (a name starting with "_" and no port) is
// an SRV lookup, as Kubernetes headless services and Consul publish: the
// targets of the lowest priority are the endpoints, each target's
// addresses at the SRV port, the SRV weight as the endpoint weight.
type discovery struct {
	c       *Cluster
	opts    *options
	static  []source
	file    string
	refresh time.Duration

	// Owned by the discovery goroutine after start.
	fileSrc     []source
	fileMod     time.Time
	fileSize    int64
	resolved    map[string][]netip.Addr // last good answer per name
	srvResolved map[string][]source
}

func newDiscovery(c *Cluster, opts *options) (*discovery, error) {
	d := &discovery{c: c, opts: opts, file: c.cfg.EndpointsFile,
		refresh: durOr(c.cfg.DNSRefresh, defaultDNSRefresh), resolved: map[string][]netip.Addr{},
		srvResolved: map[string][]source{}}
	add := func(addr string, labels map[string]string, weight int, key string) error {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("%s %q: want host:port", key, addr)
		}
		d.static = append(d.static, source{host: host, port: port, labels: labels, weight: weight})
		return nil
	}
	for _, e := range c.cfg.Endpoints {
		if err := add(e, nil, 0, "endpoints"); err != nil {
			return nil, err
		}
	}
	for _, e := range c.cfg.LabeledEndpoints {
		if err := add(e.Address, e.Labels, e.Weight, "labeled_endpoints"); err != nil {
			return nil, err
		}
	}
	if c.cfg.DNS != "" {
		if strings.HasPrefix(c.cfg.DNS, "_") && !strings.Contains(c.cfg.DNS, ":") {
			d.static = append(d.static, source{host: strings.TrimSuffix(c.cfg.DNS, "."), srv: true})
		} else if err := add(c.cfg.DNS, nil, 0, "dns"); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// start resolves once, synchronously, so the cluster serves from its first
// request, then keeps watching in the background if anything can change.
func (d *discovery) start(ctx context.Context) error {
	if d.file != "" {
		if _, err := d.readFile(); err != nil {
			return err
		}
	}
	d.update(ctx)
	names := false
	for _, s := range d.allSources() {
		names = names || s.isName()
	}
	if !names && d.file == "" {
		return nil
	}
	d.c.wg.Add(1)
	go func() {
		defer d.c.wg.Done()
		d.loop(ctx)
	}()
	return nil
}

func (d *discovery) loop(ctx context.Context) {
	dnsTick := time.NewTicker(d.refresh)
	defer dnsTick.Stop()
	var fileC <-chan time.Time
	if d.file != "" {
		t := time.NewTicker(d.opts.filePoll)
		defer t.Stop()
		fileC = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-dnsTick.C:
			d.update(ctx)
		case <-fileC:
			changed, err := d.readFile()
			if err != nil {
				d.c.log.Warn("endpoints file unreadable; keeping the last endpoints", zap.String("file", d.file), zap.Error(err))
				continue
			}
			if changed {
				d.update(ctx)
			}
		}
	}
}

func (d *discovery) allSources() []source {
	if len(d.fileSrc) == 0 {
		return d.static
	}
	return append(append([]source(nil), d.static...), d.fileSrc...)
}

// readFile re-reads the endpoints file when its mtime or size changed.
func (d *discovery) readFile() (bool, error) {
	st, err := os.Stat(d.file)
	if err != nil {
		return false, fmt.Errorf("endpoints_file: %w", err)
	}
	if st.ModTime().Equal(d.fileMod) && st.Size() == d.fileSize {
		return false, nil
	}
	b, err := config.ReadFile("endpoints_file", d.file, config.MaxNamedFileBytes)
	if err != nil {
		return false, err
	}
	src, err := parseEndpointsFile(b)
	if err != nil {
		return false, fmt.Errorf("endpoints_file %s: %w", d.file, err)
	}
	d.fileSrc, d.fileMod, d.fileSize = src, st.ModTime(), st.Size()
	return true, nil
}

// parseEndpointsFile reads one endpoint a line:
//
//	# comment
//	10.0.0.7:8080
//	10.0.0.8:8080 weight=3 version=v2 zone=a
//
// An address, then optional "weight=N" and "label=value" words.
func parseEndpointsFile(b []byte) ([]source, error) {
	var out []source
	sc := bufio.NewScanner(bytes.NewReader(b))
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		host, port, err := net.SplitHostPort(fields[0])
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("line %d: %q: want host:port", line, fields[0])
		}
		s := source{host: host, port: port}
		for _, f := range fields[1:] {
			k, v, ok := strings.Cut(f, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("line %d: %q: want key=value", line, f)
			}
			if k == "weight" {
				w, err := strconv.Atoi(v)
				if err != nil || w < 1 {
					return nil, fmt.Errorf("line %d: weight %q: want a positive integer", line, v)
				}
				s.weight = w
				continue
			}
			if s.labels == nil {
				s.labels = map[string]string{}
			}
			s.labels[k] = v
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// update resolves every source and installs a new host set when the
// endpoints changed. Endpoints whose address, labels and weight are
// unchanged are carried over with their health and outlier state.
func (d *discovery) update(ctx context.Context) {
	srcs := d.allSources()
	type resolvedEP struct {
		addr, host string
		src        source
	}
	var eps []resolvedEP
	for _, s := range srcs {
		if s.srv {
			for _, t := range d.resolveSRV(ctx, s.host) {
				addrs, ok := d.resolve(ctx, t.host)
				if !ok {
					continue
				}
				for _, a := range addrs {
					eps = append(eps, resolvedEP{addr: net.JoinHostPort(a.String(), t.port), host: t.host, src: t})
				}
			}
			continue
		}
		if !s.isName() {
			eps = append(eps, resolvedEP{addr: net.JoinHostPort(s.host, s.port), src: s})
			continue
		}
		addrs, ok := d.resolve(ctx, s.host)
		if !ok {
			continue
		}
		for _, a := range addrs {
			eps = append(eps, resolvedEP{addr: net.JoinHostPort(a.String(), s.port), host: s.host, src: s})
		}
	}
	old := d.c.hosts.Load()
	seen := make(map[string]bool, len(eps))
	hosts := make([]*endpoint, 0, len(eps))
	same := old != nil && len(old.hosts) == len(eps)
	for _, r := range eps {
		if seen[r.addr] {
			// The same address twice (two names resolving alike) would
			// double its share; keep the first.
			same = false
			continue
		}
		seen[r.addr] = true
		var e *endpoint
		if old != nil {
			if o := old.byAddr[r.addr]; o != nil && o.host == r.host && o.weight == r.src.weight && maps.Equal(o.labels, r.src.labels) {
				e = o
			}
		}
		if e == nil {
			e = &endpoint{addr: r.addr, host: r.host, labels: r.src.labels, weight: r.src.weight}
		}
		if same && old.hosts[len(hosts)] != e {
			same = false
		}
		hosts = append(hosts, e)
	}
	if same {
		return
	}
	d.c.hosts.Store(newHostSet(hosts, d.c.newLB))
	if old != nil {
		kept := make(map[*endpoint]bool, len(hosts))
		for _, h := range hosts {
			kept[h] = true
		}
		removed := false
		for _, o := range old.hosts {
			if !kept[o] {
				o.removed.Store(true)
				removed = true
			}
		}
		if removed {
			// Idle connections to endpoints that left are of no more use.
			d.c.pool.CloseIdleConnections()
		}
		d.c.log.Info("endpoints changed", zap.Int("endpoints", len(hosts)))
	}
}

// resolveSRV returns the lowest-priority targets of an SRV name as
// sources; on failure the last good answer.
func (d *discovery) resolveSRV(ctx context.Context, name string) []source {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	srvs, err := d.opts.lookupSRV(rctx, name)
	cancel()
	if err != nil || len(srvs) == 0 {
		last, ok := d.srvResolved[name]
		if ctx.Err() == nil {
			d.c.log.Warn("dns SRV lookup failed", zap.String("name", name), zap.Error(err), zap.Bool("keeping_last", ok))
		}
		return last
	}
	best := srvs[0].Priority
	for _, s := range srvs {
		best = min(best, s.Priority)
	}
	var out []source
	for _, s := range srvs {
		if s.Priority != best {
			continue
		}
		out = append(out, source{host: strings.TrimSuffix(s.Target, "."), port: strconv.Itoa(int(s.Port)), weight: max(1, int(s.Weight))})
	}
	slices.SortFunc(out, func(a, b source) int { return strings.Compare(a.host+":"+a.port, b.host+":"+b.port) })
	d.srvResolved[name] = out
	return out
}

// resolve looks a name up, IPv4 preferred. On failure it keeps the last
// good answer (Envoy keeps hosts across failed refreshes too).
func (d *discovery) resolve(ctx context.Context, name string) ([]netip.Addr, bool) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	addrs, err := d.opts.lookup(rctx, name)
	cancel()
	if err != nil || len(addrs) == 0 {
		last, ok := d.resolved[name]
		if ctx.Err() == nil {
			d.c.log.Warn("dns lookup failed", zap.String("name", name), zap.Error(err), zap.Bool("keeping_last", ok))
		}
		return last, ok
	}
	var v4, v6 []netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	out := v4
	if len(out) == 0 {
		out = v6
	}
	// Servers rotate answers; in a fixed order an unchanged answer is an
	// unchanged host set, not a rebuilt one.
	slices.SortFunc(out, netip.Addr.Compare)
	out = slices.Compact(out)
	d.resolved[name] = out
	return out, true
}
