package wasmsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/sluice-proxy/sluice/runtime/pluginsource"
)

// Options configure a Fetcher.
type Options struct {
	// CacheDir holds fetched modules across restarts; "" keeps them in
	// memory for the process's life only.
	CacheDir string
	// InsecureRegistries may be reached over plain HTTP ("host:port" as in
	// the reference). Every other registry must answer over HTTPS.
	InsecureRegistries []string
	// MaxModuleBytes caps a module (and the layer or body it comes in);
	// default 64 MiB.
	MaxModuleBytes int64
	// Keychain finds registry credentials; default authn.DefaultKeychain,
	// which reads the docker config file ($DOCKER_CONFIG/config.json or
	// ~/.docker/config.json).
	Keychain authn.Keychain
	// Transport carries every request; default http.DefaultTransport.
	// Tests set one that trusts their certificate.
	Transport http.RoundTripper
	// AttemptTimeout bounds one fetch; default 2 minutes.
	AttemptTimeout time.Duration
	// RetryBase and RetryMax bound the backoff between attempts (default
	// 1s and 1m); MaxAttempts is how many FetchRetry makes before it gives
	// up (default 10, about five minutes). A failure to verify is not
	// retried: the source answered, with the wrong bytes.
	RetryBase, RetryMax time.Duration
	MaxAttempts         int
}

// DefaultMaxModuleBytes caps a fetched module unless Options say otherwise.
const DefaultMaxModuleBytes = 64 << 20

// Cause says which step of a fetch failed, for metrics and /plugins.
type Cause string

const (
	CauseFetch  Cause = "fetch"  // the source could not be reached or read
	CauseVerify Cause = "verify" // it answered with bytes that do not match
)

// Error is a failed fetch.
type Error struct {
	Cause Cause
	URL   string
	Err   error
}

func (e *Error) Error() string { return fmt.Sprintf("%s %s: %v", e.Cause, redact(e.URL), e.Err) }

// redact hides a password in a URL (https://user:secret@host/...).
func redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}
func (e *Error) Unwrap() error { return e.Err }

// Module is a fetched (or cached) module.
type Module struct {
	Bytes []byte
	// SHA256 is the module's own digest (hex); the cache's key.
	SHA256 string
	// ImageDigest is an OCI image's manifest digest (hex), "" otherwise.
	ImageDigest string
	// Layout is how an OCI image carried the module (see oci.go).
	Layout string
	// Cached is true when no network was used.
	Cached bool
}

// Digest is what identifies the module to an operator: the image's
// manifest digest for OCI (what a reference @sha256: names), the module's
// own digest otherwise.
func (m Module) Digest() string {
	if m.ImageDigest != "" {
		return m.ImageDigest
	}
	return m.SHA256
}

// Fetcher fetches modules and caches them by digest. Safe for concurrent
// use.
type Fetcher struct {
	opts     Options
	cache    *cache
	insecure map[string]bool
}

// New makes a Fetcher; it fails only when the cache directory cannot be
// made.
func New(opts Options) (*Fetcher, error) {
	if opts.MaxModuleBytes <= 0 {
		opts.MaxModuleBytes = DefaultMaxModuleBytes
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 2 * time.Minute
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = time.Minute
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 10
	}
	c, err := newCache(opts.CacheDir, opts.MaxModuleBytes)
	if err != nil {
		return nil, err
	}
	f := &Fetcher{opts: opts, cache: c, insecure: map[string]bool{}}
	for _, r := range opts.InsecureRegistries {
		f.insecure[r] = true
	}
	return f, nil
}

// Cached returns the module src last resolved to, without the network:
// by digest when src pins one, else by what its tag or URL resolved to
// last. The caller decides whether to fetch anyway (PullPolicy Always).
func (f *Fetcher) Cached(src pluginsource.Source) (Module, bool) {
	switch src.Kind {
	case pluginsource.HTTPS:
		if b, ok := f.cache.module(src.SHA256); ok {
			return Module{Bytes: b, SHA256: src.SHA256, Cached: true}, true
		}
	case pluginsource.OCI:
		image := src.SHA256
		if image == "" {
			var ok bool
			if image, ok = f.cache.ref("tag " + src.Ref); !ok {
				return Module{}, false
			}
		}
		v, ok := f.cache.ref("image " + src.Ref + " " + image)
		if !ok {
			return Module{}, false
		}
		var layout, mod string
		if _, err := fmt.Sscanf(v, "%s %s", &mod, &layout); err != nil {
			return Module{}, false
		}
		if b, ok := f.cache.module(mod); ok {
			return Module{Bytes: b, SHA256: mod, ImageDigest: image, Layout: layout, Cached: true}, true
		}
	}
	return Module{}, false
}

// Fetch makes one attempt to fetch src over the network, verifies it and
// caches it. File sources are read (and verified when they pin a digest).
func (f *Fetcher) Fetch(ctx context.Context, src pluginsource.Source) (Module, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.AttemptTimeout)
	defer cancel()
	var m Module
	var err error
	switch src.Kind {
	case pluginsource.HTTPS:
		m, err = f.fetchHTTPS(ctx, src)
	case pluginsource.OCI:
		m, err = f.fetchOCI(ctx, src)
	case pluginsource.File:
		m, err = f.readFile(src)
	default:
		return Module{}, &Error{CauseFetch, src.URL, errors.New("not a fetchable source")}
	}
	if err != nil {
		return Module{}, err
	}
	if src.Kind == pluginsource.File {
		return m, nil
	}
	if _, err := f.cache.putModule(m.Bytes); err != nil {
		// The module is good; only the next start pays for the miss.
		return m, nil
	}
	if src.Kind == pluginsource.OCI {
		_ = f.cache.putRef("image "+src.Ref+" "+m.ImageDigest, m.SHA256+" "+m.Layout)
		if src.SHA256 == "" {
			_ = f.cache.putRef("tag "+src.Ref, m.ImageDigest)
		}
	}
	return m, nil
}

// FetchRetry fetches src, retrying with jittered exponential backoff until
// it succeeds, the bytes fail verification, MaxAttempts is reached or ctx
// ends. failed (if not nil) hears of every failed attempt.
func (f *Fetcher) FetchRetry(ctx context.Context, src pluginsource.Source, failed func(attempt int, err error)) (Module, error) {
	delay := f.opts.RetryBase
	for attempt := 1; ; attempt++ {
		m, err := f.Fetch(ctx, src)
		if err == nil {
			return m, nil
		}
		if failed != nil {
			failed(attempt, err)
		}
		var fe *Error
		if errors.As(err, &fe) && fe.Cause == CauseVerify || attempt >= f.opts.MaxAttempts {
			return Module{}, err
		}
		// Up to half the delay again, so that many proxies restarted
		// together do not hammer a registry in step.
		wait := delay + rand.N(delay/2+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return Module{}, err
		case <-t.C:
		}
		delay = min(2*delay, f.opts.RetryMax)
	}
}

func (f *Fetcher) readFile(src pluginsource.Source) (Module, error) {
	fh, err := os.Open(src.Path)
	if err != nil {
		return Module{}, &Error{CauseFetch, src.URL, err}
	}
	defer fh.Close()
	b, err := readCapped(fh, f.opts.MaxModuleBytes)
	if err != nil {
		return Module{}, &Error{CauseFetch, src.URL, err}
	}
	return f.verified(src, b)
}

// verified checks b against a pinned module digest.
func (f *Fetcher) verified(src pluginsource.Source, b []byte) (Module, error) {
	d := sum(b)
	if src.SHA256 != "" && d != src.SHA256 {
		return Module{}, &Error{CauseVerify, src.URL, fmt.Errorf("the module's sha256 is %s, not %s", d, src.SHA256)}
	}
	return Module{Bytes: b, SHA256: d}, nil
}

func (f *Fetcher) fetchHTTPS(ctx context.Context, src pluginsource.Source) (Module, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return Module{}, &Error{CauseFetch, src.URL, err}
	}
	client := &http.Client{Transport: f.opts.Transport, CheckRedirect: httpsRedirectsOnly}
	resp, err := client.Do(req)
	if err != nil {
		return Module{}, &Error{CauseFetch, src.URL, err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Module{}, &Error{CauseFetch, src.URL, fmt.Errorf("answered %s", resp.Status)}
	}
	b, err := readCapped(resp.Body, f.opts.MaxModuleBytes)
	if err != nil {
		return Module{}, &Error{CauseFetch, src.URL, err}
	}
	return f.verified(src, b)
}

// httpsRedirectsOnly follows up to 10 redirects, none to plain http: the
// digest would catch altered bytes, but not a leak of the request.
func httpsRedirectsOnly(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("more than 10 redirects")
	}
	if req.URL.Scheme != "https" {
		return fmt.Errorf("redirected to %s, not https", req.URL.Redacted())
	}
	return nil
}

// readCapped reads r whole, refusing more than limit bytes.
func readCapped(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("more than the module limit of %d bytes", limit)
	}
	return b, nil
}
