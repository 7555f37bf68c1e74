package config

import (
	"fmt"
	"io"
	"os"
)

// MaxFileBytes is the largest config file sluice reads. A real config is a
// few kilobytes; the cap keeps `/dev/zero` or a runaway generator from
// filling memory before the parser ever sees the text.
const MaxFileBytes = 4 << 20

// MaxDepth is how deeply tables, arrays and dotted-key parts may nest in a
// config file: each part of a [table] header or a dotted key counts one,
// as does each inline table, and an array's elements sit one below it. The
// deepest built-in configuration (canary's http routes) nests about a
// dozen levels. BurntSushi/toml's cost grows with the square
// of the depth (4,000 nested inline tables, 16 KB of text, took 905 MB and
// 7.5 s to refuse), so the file is measured before it is parsed.
const MaxDepth = 64

// MaxKeyParts caps the sum, over every key in the file, of the key's depth
// (the parts of its full path: "a.b.c" is 3). The TOML parser copies each
// key's full path several times, about 300 bytes per part, so this bounds
// its memory (to about 300 MB) where MaxDepth and MaxFileBytes alone allow
// a 4 MiB file of keys 60 deep to take 17 GB. A config of ten thousand
// routes counts a few hundred thousand.
const MaxKeyParts = 1_000_000

// MaxKeyBytes caps the sum of the lengths of every key's full path in
// bytes, for the same reason as MaxKeyParts: long key names deep down cost
// the parser about 40 bytes for each byte of path.
const MaxKeyBytes = 8 << 20

// readFile reads a config file of at most MaxFileBytes, without trusting
// its size on disk (a pipe or a device has none).
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, &Error{Problems: []Problem{tooBig(path)}}
	}
	return data, nil
}

func tooBig(name string) Problem {
	return Problem{File: name, Msg: fmt.Sprintf("the file is larger than %d MiB, the most a config may be", MaxFileBytes>>20)}
}

// checkBounds refuses text the TOML parser would take too long or too
// much memory over: more than MaxFileBytes, nesting deeper than MaxDepth,
// or more than MaxKeyParts. It is one pass over the bytes with no allocation, and it
// knows TOML's four kinds of string and its comments, so brackets and dots
// inside them are not counted. It measures and does not judge: malformed
// text it lets through, for the parser to report with its own words.
func checkBounds(name string, data []byte) *Problem {
	if len(data) > MaxFileBytes {
		p := tooBig(name)
		return &p
	}
	var s depthScanner
	line := s.scan(data)
	switch {
	case line == 0:
		return nil
	case s.parts > MaxKeyParts:
		return &Problem{File: name, Line: line, Msg: fmt.Sprintf(
			"more than %d key parts in all (a key counts once for each table it is in)", MaxKeyParts)}
	case s.bytes > MaxKeyBytes:
		return &Problem{File: name, Line: line, Msg: fmt.Sprintf(
			"the keys' full paths (\"a.b.c\") add up to more than %d MiB", MaxKeyBytes>>20)}
	}
	return &Problem{File: name, Line: line, Msg: fmt.Sprintf(
		"tables, arrays and dotted keys nest more than %d deep", MaxDepth)}
}

// depthScanner walks TOML text measuring each key and value: its depth
// (the parts of the current [table] header, of each dotted key, and each
// enclosing inline table or array) and the length of its full path.
type depthScanner struct {
	// The inline tables and arrays open around the scan: each one's kind
	// ('{' or '[') and the place its members hang from (for a table, its
	// own, to which each member adds its key; one below, for an array).
	// Every container is at least as deep as its parent and an array's
	// elements deeper, so no more than 2*MaxDepth can be open before one
	// is refused.
	kinds  [2 * MaxDepth]byte
	places [2 * MaxDepth]place
	open   int

	table   place // the current [table] or [[array]] header
	header  bool  // inside a header
	inKey   bool  // reading a key (before its '=')
	key     place // the key being read, or the last one read: its parts and length
	keyFrom int   // where the key started
	lineNew bool  // nothing but blanks yet on this line (top level)

	deepest int // the greatest depth seen
	parts   int // the depths of every key and container, added up
	bytes   int // the lengths of their full paths, added up
}

// place is where a key or container sits: how deep, and how long its full
// path is in bytes.
type place struct{ depth, bytes int }

// reach notes a key or container at p and reports whether it passes
// MaxDepth or brings the totals over MaxKeyParts or MaxKeyBytes.
func (s *depthScanner) reach(p place) bool {
	s.deepest = max(s.deepest, p.depth)
	s.parts += p.depth
	s.bytes += p.bytes
	return p.depth > MaxDepth || s.parts > MaxKeyParts || s.bytes > MaxKeyBytes
}

// base is the place a key or value at the current position hangs from.
func (s *depthScanner) base() place {
	if s.open > 0 {
		return s.places[s.open-1]
	}
	return s.table
}

// scan returns the 1-based line where a limit is first passed, or 0.
func (s *depthScanner) scan(b []byte) int {
	line := 1
	s.lineNew, s.inKey = true, true
	i := 0
	if len(b) >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		i = 3 // a UTF-8 byte order mark
	}
	for ; i < len(b); i++ {
		c := b[i]
		switch c {
		case '\n':
			line++
			if s.open == 0 {
				// A header left open is the parser's to refuse.
				s.header, s.lineNew = false, true
				s.startKey()
			}
			continue
		case ' ', '\t', '\r':
			continue
		case '#':
			for i+1 < len(b) && b[i+1] != '\n' {
				i++
			}
			continue
		case '"', '\'':
			from := i
			i, line = skipString(b, i, line)
			s.keyPart(from)
		case '=':
			if s.inKey {
				s.inKey = false
				s.key.bytes = i - s.keyFrom
				b := s.base()
				if s.reach(place{b.depth + s.key.depth, b.bytes + 1 + s.key.bytes}) {
					return line
				}
			}
		case '.':
			if s.inKey || s.header {
				// A dot between key parts; "a..b" is the parser's to refuse.
				s.key.depth++
			}
		case '[':
			if s.open == 0 && s.lineNew {
				// A [table] or [[array of tables]] header.
				s.header, s.inKey = true, false
				s.key, s.keyFrom = place{depth: 1}, i
				if i+1 < len(b) && b[i+1] == '[' {
					i++
					s.key.depth++ // the array and its element
				}
				break
			}
			if s.push('[') {
				return line
			}
		case '{':
			if s.push('{') {
				return line
			}
		case ']':
			if s.header {
				s.header = false
				s.table = place{s.key.depth, i - s.keyFrom}
				if i+1 < len(b) && b[i+1] == ']' {
					i++
				}
				if s.reach(s.table) {
					return line
				}
				break
			}
			s.pop()
		case '}':
			s.pop()
		case ',':
			if s.open > 0 && s.kinds[s.open-1] == '{' {
				s.startKey()
			}
		default:
			s.keyPart(i)
		}
		s.lineNew = false
	}
	return 0
}

// startKey expects a key next.
func (s *depthScanner) startKey() {
	s.inKey, s.key = true, place{}
}

// keyPart notes a key's first character at from; later ones change nothing.
func (s *depthScanner) keyPart(from int) {
	if s.inKey && s.key.depth == 0 {
		s.key.depth, s.keyFrom = 1, from
	}
}

// push opens an inline table or array and reports whether it, or
// what it holds, passes a limit. The container is a value: of the key
// just read (placed at the table's place plus the key), or an element of
// the enclosing array (one below the array).
func (s *depthScanner) push(kind byte) bool {
	b := s.base()
	p := place{b.depth + max(s.key.depth, 1), b.bytes + 1 + s.key.bytes}
	if s.open > 0 && s.kinds[s.open-1] == '[' {
		p = b
	}
	if kind == '[' {
		p.depth++    // its elements
		p.bytes += 3 // and their index, "[0]"
	}
	if s.reach(p) || s.open == len(s.kinds) {
		return true
	}
	s.kinds[s.open], s.places[s.open] = kind, p
	s.open++
	if kind == '{' {
		s.startKey()
	} else {
		s.inKey = false
	}
	return false
}

// pop closes the innermost container; a stray closer is the parser's to
// report, so it only has to keep the count sane.
func (s *depthScanner) pop() {
	if s.open > 0 {
		s.open--
	}
	s.inKey = false
}

// skipString returns the index of the last byte of the string starting at
// b[i] (a quote) and the line it ends on. TOML has four kinds: basic
// strings in double quotes with backslash escapes, literal ones in single
// quotes without, and the multi-line forms of both in triple quotes, which
// end at the last three quotes of a run of three to five (up to two quotes
// may sit just before the closing ones).
// A single-line string that meets the end of its line ends there: the
// parser refuses it, and the scan goes on counting from a sane place.
func skipString(b []byte, i, line int) (int, int) {
	q := b[i]
	multi := i+2 < len(b) && b[i+1] == q && b[i+2] == q
	if !multi {
		for j := i + 1; j < len(b); j++ {
			switch {
			case b[j] == '\\' && q == '"' && j+1 < len(b) && b[j+1] != '\n':
				j++
			case b[j] == q:
				return j, line
			case b[j] == '\n':
				return j - 1, line
			}
		}
		return len(b) - 1, line
	}
	for j := i + 3; j < len(b); j++ {
		switch {
		case b[j] == '\\' && q == '"':
			if j+1 < len(b) && b[j+1] == '\n' {
				line++
			}
			j++
		case b[j] == '\n':
			line++
		case b[j] == q:
			n := 1
			for j+n < len(b) && b[j+n] == q {
				n++
			}
			if n >= 3 {
				return j + n - 1, line
			}
			j += n - 1
		}
	}
	return len(b) - 1, line
}
