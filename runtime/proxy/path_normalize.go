package proxy

import (
	"strings"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// Path normalization, done once when a request arrives so that filters,
// route matching, authorization and the upstream all see one path. The
// passes follow Envoy's header validator: decode escapes, merge slashes,
// remove dot segments; the options are Istio's pathNormalization and
// Envoy's path_with_escaped_slashes_action (config.Listener documents
// them), plus path parameters (";"), which Envoy and Istio leave alone.
// The normalizer never forwards what is not a path: "%00", a control
// byte, a malformed escape, or (unless NONE) ".." above the root is a 400.

// pathPolicy is a listener's path options, parsed once per snapshot.
type pathPolicy struct {
	none    bool // path_normalization = "NONE"
	merge   bool // merge "//" (MERGE_SLASHES and up)
	slashes escapedSlashes
	params  pathParams
}

type escapedSlashes uint8

const (
	slashesKeep escapedSlashes = iota
	slashesReject
	slashesRedirect
	slashesForward
)

type pathParams uint8

const (
	paramsStrip pathParams = iota
	paramsKeep
	paramsReject
)

func newPathPolicy(l config.Listener) pathPolicy {
	p := pathPolicy{}
	switch l.PathNormalization {
	case "NONE":
		p.none = true
	case "BASE":
	default: // MERGE_SLASHES, the default, and DECODE_AND_MERGE_SLASHES
		p.merge = true
	}
	switch l.PathWithEscapedSlashes {
	case "REJECT_REQUEST":
		p.slashes = slashesReject
	case "UNESCAPE_AND_REDIRECT":
		p.slashes = slashesRedirect
	case "UNESCAPE_AND_FORWARD":
		p.slashes = slashesForward
	default:
		if l.PathNormalization == "DECODE_AND_MERGE_SLASHES" {
			// Istio's option is Envoy's UNESCAPE_AND_FORWARD; the two
			// stricter actions keep their meaning beside it.
			p.slashes = slashesForward
		}
	}
	switch l.PathParameters {
	case "KEEP":
		p.params = paramsKeep
	case "REJECT":
		p.params = paramsReject
	}
	return p
}

// pathVerdict is what to do with a request after normalizing its path.
type pathVerdict uint8

const (
	pathOK       pathVerdict = iota
	pathReject               // 400
	pathRedirect             // 307 to the normalized path
)

// normalizePath normalizes p, the escaped path of an origin-form request
// target without its query. It returns p itself when nothing changes.
func normalizePath(p string, pol pathPolicy) (string, pathVerdict) {
	if p == "" || p[0] != '/' {
		return p, pathReject
	}
	if pol.none {
		// The path as received, but never one that is not a path at all.
		if !wellFormed(p) {
			return p, pathReject
		}
		return p, pathOK
	}
	if isNormalPath(p, pol) {
		return p, pathOK
	}
	out, redirect, ok := decodePath(p, pol)
	if !ok {
		return p, pathReject
	}
	if strings.IndexByte(out, ';') >= 0 {
		switch pol.params {
		case paramsReject:
			return p, pathReject
		case paramsStrip:
			out = stripPathParams(out)
		}
	}
	if out, ok = resolvePath(out, pol.merge); !ok {
		return p, pathReject
	}
	if pol.slashes == slashesKeep && hidesSegments(out, pol.merge) {
		return p, pathReject
	}
	if redirect {
		return out, pathRedirect
	}
	return out, pathOK
}

// isNormalPath is the fast path: a path with no escapes, backslashes,
// parameters, dot segments, repeated slashes or bytes to escape is
// already normal.
func isNormalPath(p string, pol pathPolicy) bool {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '%' || c == '\\' || c == ';' || mustEscape(c):
			return false
		case c == '/' && i+1 < len(p):
			switch p[i+1] {
			case '/':
				if pol.merge {
					return false
				}
			case '.':
				return false // maybe a dot segment; the slow path decides
			}
		}
	}
	return true
}

// mustEscape reports bytes a path carries only escaped: controls (refused
// in decodePath), space, non-ASCII and the characters RFC 3986 excludes
// from a path ("\"", "<", ">", "^", "`", "{", "|", "}", "#").
// Escaping them keeps the forwarded path one that Go's URL sends as is.
func mustEscape(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return true
	}
	switch c {
	case '"', '<', '>', '^', '`', '{', '|', '}', '#':
		return true
	}
	return false
}

// wellFormed reports whether p has only complete escapes and no control
// bytes, escaped ("%00") or not: what even path_normalization = "NONE"
// requires, as Istio refuses %00 whatever the option.
func wellFormed(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' {
			if d, ok := escapeAt(p, i); !ok || d < 0x20 || d == 0x7f {
				return false
			}
			i += 2
			continue
		}
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

const upperHex = "0123456789ABCDEF"

// writeEscape writes c as "%XX", upper-case as RFC 3986 recommends.
func writeEscape(b *strings.Builder, c byte) {
	b.WriteByte('%')
	b.WriteByte(upperHex[c>>4])
	b.WriteByte(upperHex[c&15])
}

// escapeAt decodes the "%XX" at p[i]; ok is false when it is cut short
// or not hex.
func escapeAt(p string, i int) (byte, bool) {
	if i+2 >= len(p) {
		return 0, false
	}
	hi, ok1 := unhex(p[i+1])
	lo, ok2 := unhex(p[i+2])
	return hi<<4 | lo, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unreserved are RFC 3986's unreserved characters: their escapes mean the
// character itself, so "%2e" is a dot and "%41" an "A".
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// decodePath is the decode pass: escapes of unreserved characters decoded,
// other escapes upper-cased, %2F and %5C as pol.slashes says, "\" made "/"
// (as Istio's BASE does), bytes that must be escaped escaped. ok is false
// for a malformed escape, NUL or another control byte, or a refused %2F.
func decodePath(p string, pol pathPolicy) (out string, redirect, ok bool) {
	var b strings.Builder
	b.Grow(len(p) + 8)
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			d, ok := escapeAt(p, i)
			if !ok {
				return "", false, false
			}
			i += 2
			switch {
			case d < 0x20 || d == 0x7f:
				return "", false, false // %00 and other controls: always a 400, as Istio
			case unreserved(d):
				b.WriteByte(d)
			case d == '/' || d == '\\':
				switch pol.slashes {
				case slashesReject:
					return "", false, false
				case slashesRedirect, slashesForward:
					redirect = redirect || pol.slashes == slashesRedirect
					b.WriteByte('/')
				default:
					writeEscape(&b, d)
				}
			default:
				writeEscape(&b, d)
			}
		case c < 0x20 || c == 0x7f:
			return "", false, false
		case c == '\\':
			b.WriteByte('/')
		case mustEscape(c):
			writeEscape(&b, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), redirect, true
}

// stripPathParams removes ";..." up to the end of each segment:
// "/a;x/..;y/b" becomes "/a/../b".
func stripPathParams(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] != ';' {
			b.WriteByte(p[i])
			continue
		}
		j := strings.IndexByte(p[i:], '/')
		if j < 0 {
			break
		}
		i += j - 1
	}
	return b.String()
}

// resolvePath merges repeated slashes (when merge is set) and removes "."
// and ".." segments as RFC 3986 section 5.2.4 does, except that ".."
// above the root is refused (ok false) rather than dropped, as Envoy's
// header validator does. p starts with "/".
func resolvePath(p string, merge bool) (string, bool) {
	segs := strings.Split(p[1:], "/")
	out := segs[:0]
	trailing := false // the result ends with "/"
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			trailing = true
			continue
		case "..":
			if len(out) == 0 {
				return "", false
			}
			out = out[:len(out)-1]
			trailing = true
			continue
		case "":
			if merge && !last {
				continue
			}
		}
		out = append(out, s)
		trailing = false
	}
	res := "/" + strings.Join(out, "/")
	if trailing && !strings.HasSuffix(res, "/") {
		res += "/"
	}
	return res, true
}

// hidesSegments reports whether a path whose %2F and %5C are kept would
// have dot segments or (when merging) empty ones once an app decodes them:
// "/public/..%2Fadmin" resolves to "/admin" there, a path routing and
// authorization never saw.
func hidesSegments(p string, merge bool) bool {
	if !strings.Contains(p, "%2F") && !strings.Contains(p, "%5C") {
		return false
	}
	d := strings.NewReplacer("%2F", "/", "%5C", "/").Replace(p)
	r, ok := resolvePath(d, merge)
	return !ok || r != d
}
