package proxy

import (
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/config"
)

func policy(norm, slashes, params string) pathPolicy {
	return newPathPolicy(config.Listener{PathNormalization: norm, PathWithEscapedSlashes: slashes, PathParameters: params})
}

func TestNormalizePath(t *testing.T) {
	def := policy(config.DefaultPathNormalization, config.DefaultPathEscapedSlashes, config.DefaultPathParameters)
	const bad = "400"
	tests := []struct {
		name string
		pol  pathPolicy
		in   string
		want string // bad for a 400
		redi bool   // a 307 to want
	}{
		// The spellings, with the defaults.
		{"double slash", def, "//admin", "/admin", false},
		{"triple slash", def, "///admin/x", "/admin/x", false},
		{"dot", def, "/./admin", "/admin", false},
		{"dot dot", def, "/public/../admin", "/admin", false},
		{"escaped dots", def, "/public/%2e%2e/admin", "/admin", false},
		{"escaped dots upper", def, "/public/%2E%2E/admin", "/admin", false},
		{"escaped one dot", def, "/public/.%2e/admin", "/admin", false},
		{"param", def, "/admin;x", "/admin", false},
		{"tomcat dot dot", def, "/public/..;/admin", "/admin", false},
		{"params everywhere", def, "/a;x=1/b;y/c", "/a/b/c", false},
		// More.
		{"already normal", def, "/public/a", "/public/a", false},
		{"root", def, "/", "/", false},
		{"trailing slash kept", def, "/admin/", "/admin/", false},
		{"trailing dot", def, "/admin/.", "/admin/", false},
		{"trailing dot dot", def, "/admin/x/..", "/admin/", false},
		{"dot dot to root", def, "/admin/..", "/", false},
		{"case kept", def, "/ADMIN", "/ADMIN", false},
		{"dots in names", def, "/a/.well-known/..x/...", "/a/.well-known/..x/...", false},
		{"unreserved decoded", def, "/%61dmin/%7Ex%2D%5F%30", "/admin/~x-_0", false},
		{"reserved kept, hex upper-cased", def, "/a%3fb%3Bc%25", "/a%3Fb%3Bc%25", false},
		{"backslash", def, "/public\\..\\admin", "/admin", false},
		{"space and quote escaped", def, "/a b\"c", "/a%20b%22c", false},
		{"utf-8 escaped", def, "/caf\xc3\xa9", "/caf%C3%A9", false},
		{"escaped slash kept", def, "/admin%2Fx", "/admin%2Fx", false},
		{"escaped slash lower case", def, "/a%2fb%5cc", "/a%2Fb%5Cc", false},
		{"escaped slash hiding dot dot", def, "/public/..%2Fadmin", bad, false},
		{"escaped slash hiding dot dot, backslash", def, "/public/..%5Cadmin", bad, false},
		{"escaped slash hiding empty segment", def, "/%2Fadmin", bad, false},
		{"escaped slash hiding dot", def, "/a/.%2Fb", bad, false},
		// Invalid paths.
		{"dot dot above root", def, "/..", bad, false},
		{"escaped dot dot above root", def, "/a/%2e%2e/%2e%2e/b", bad, false},
		{"nul", def, "/admin%00", bad, false},
		{"control", def, "/a%0Ab", bad, false},
		{"raw control", def, "/a\x01b", bad, false},
		{"bad escape", def, "/a%zz", bad, false},
		{"short escape", def, "/a%2", bad, false},
		{"relative", def, "admin", bad, false},
		{"empty", def, "", bad, false},
		// Options.
		{"NONE keeps all", policy("NONE", "KEEP_UNCHANGED", "STRIP"), "//a/../%2e;x/%2f", "//a/../%2e;x/%2f", false},
		{"NONE still refuses %00", policy("NONE", "KEEP_UNCHANGED", "STRIP"), "/a%00", bad, false},
		{"NONE still refuses a bad escape", policy("NONE", "KEEP_UNCHANGED", "STRIP"), "/a%g0", bad, false},
		{"NONE still refuses a relative path", policy("NONE", "KEEP_UNCHANGED", "STRIP"), "a/b", bad, false},
		{"BASE keeps slashes", policy("BASE", "KEEP_UNCHANGED", "STRIP"), "//admin/./x", "//admin/x", false},
		{"BASE dot dot over empty segment", policy("BASE", "KEEP_UNCHANGED", "STRIP"), "/a//../b", "/a/b", false},
		{"DECODE_AND_MERGE_SLASHES", policy("DECODE_AND_MERGE_SLASHES", "KEEP_UNCHANGED", "STRIP"), "/public/..%2Fadmin%5C%2e%2Fx", "/admin/x", false},
		{"UNESCAPE_AND_FORWARD", policy("MERGE_SLASHES", "UNESCAPE_AND_FORWARD", "STRIP"), "/a%2F%2fb", "/a/b", false},
		{"REJECT_REQUEST", policy("MERGE_SLASHES", "REJECT_REQUEST", "STRIP"), "/a%2Fb", bad, false},
		{"DECODE_AND_MERGE_SLASHES with REJECT_REQUEST", policy("DECODE_AND_MERGE_SLASHES", "REJECT_REQUEST", "STRIP"), "/a%2Fb", bad, false},
		{"REJECT_REQUEST, no escape", policy("MERGE_SLASHES", "REJECT_REQUEST", "STRIP"), "/a/b", "/a/b", false},
		{"UNESCAPE_AND_REDIRECT", policy("MERGE_SLASHES", "UNESCAPE_AND_REDIRECT", "STRIP"), "/public/..%2fadmin", "/admin", true},
		{"params KEEP", policy("MERGE_SLASHES", "KEEP_UNCHANGED", "KEEP"), "/public/..;/admin", "/public/..;/admin", false},
		{"params REJECT", policy("MERGE_SLASHES", "KEEP_UNCHANGED", "REJECT"), "/admin;x", bad, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, v := normalizePath(tt.in, tt.pol)
			switch {
			case tt.want == bad:
				if v != pathReject {
					t.Errorf("normalizePath(%q) = %q, %d; want a 400", tt.in, got, v)
				}
			case v == pathReject:
				t.Errorf("normalizePath(%q) refused; want %q", tt.in, tt.want)
			case got != tt.want || (v == pathRedirect) != tt.redi:
				t.Errorf("normalizePath(%q) = %q, redirect %v; want %q, redirect %v", tt.in, got, v == pathRedirect, tt.want, tt.redi)
			}
			if tt.want != bad && v == pathOK {
				// Normalizing is idempotent: what goes upstream is normal.
				if again, v2 := normalizePath(got, tt.pol); again != got || v2 != pathOK {
					t.Errorf("normalizing %q again gives %q, %d", got, again, v2)
				}
			}
		})
	}
}

// TestNormalizePathNormalAllocs pins the fast path: a normal path costs
// no allocation.
func TestNormalizePathNormalAllocs(t *testing.T) {
	def := policy(config.DefaultPathNormalization, config.DefaultPathEscapedSlashes, config.DefaultPathParameters)
	if n := testing.AllocsPerRun(100, func() { normalizePath("/api/v2/orders/123", def) }); n != 0 {
		t.Errorf("%v allocations for a normal path, want 0", n)
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"//admin", "/public/%2e%2e/admin", "/public/..;/admin", "/a%2F..%2Fb", "/a/../..", "/%00", "/a\\b"} {
		f.Add(s)
	}
	pols := []pathPolicy{
		policy("MERGE_SLASHES", "KEEP_UNCHANGED", "STRIP"),
		policy("BASE", "KEEP_UNCHANGED", "KEEP"),
		policy("DECODE_AND_MERGE_SLASHES", "KEEP_UNCHANGED", "STRIP"),
	}
	f.Fuzz(func(t *testing.T, p string) {
		for _, pol := range pols {
			out, v := normalizePath(p, pol)
			if v != pathOK {
				continue
			}
			if again, v2 := normalizePath(out, pol); again != out || v2 != pathOK {
				t.Fatalf("%q -> %q -> %q (%d): not idempotent", p, out, again, v2)
			}
		}
	})
}

func BenchmarkNormalizePath(b *testing.B) {
	def := policy(config.DefaultPathNormalization, config.DefaultPathEscapedSlashes, config.DefaultPathParameters)
	for _, p := range []string{"/api/v2/orders/123", "//api/./v2/%6Frders/x/../123;v=1"} {
		b.Run(p, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				normalizePath(p, def)
			}
		})
	}
}

// plainPath's fast path is only taken where every policy would leave the
// path as it is.
func FuzzPlainPath(f *testing.F) {
	for _, s := range []string{"/bench", "/api/v2/orders/123", "/a.b/c~d_e-f", "/.", "/a/..", "/a//b", "/a/.x", "/..a/b", "/a%2Fb", "/a;b", "/A/B?x=/../", "/"} {
		f.Add(s)
	}
	var pols []pathPolicy
	for _, norm := range []string{"NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"} {
		for _, slashes := range []string{"KEEP_UNCHANGED", "REJECT_REQUEST", "UNESCAPE_AND_REDIRECT", "UNESCAPE_AND_FORWARD"} {
			for _, params := range []string{"STRIP", "KEEP", "REJECT"} {
				pols = append(pols, policy(norm, slashes, params))
			}
		}
	}
	f.Fuzz(func(t *testing.T, p string) {
		if len(p) == 0 || p[0] != '/' || !plainPath([]byte(p)) {
			return
		}
		path, _, _ := strings.Cut(p, "?")
		for _, pol := range pols {
			if out, v := normalizePath(path, pol); out != path || v != pathOK {
				t.Fatalf("plainPath(%q), but normalizePath gives %q (%d) under %+v", p, out, v, pol)
			}
		}
	})
}
