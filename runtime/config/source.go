package config

import (
	"regexp"
	"strconv"
	"strings"
)

// sourceIndex maps key paths ("routes[1].match.path") to the line that
// defines them. BurntSushi/toml keeps key positions private and drops array
// indices from MetaData keys, so we scan the source ourselves; the scan is
// line based and deliberately forgiving, since a wrong guess only costs a
// less precise line number in an error message.
type sourceIndex struct {
	lines map[string]int
	text  []string
}

func newSourceIndex(data []byte) *sourceIndex {
	ix := &sourceIndex{lines: map[string]int{}, text: strings.Split(string(data), "\n")}
	counts := map[string]int{} // array-of-tables path -> elements seen
	prefix := ""
	inMulti := "" // the closing delimiter of a multi-line string we are in
	for i, raw := range ix.text {
		lineNo := i + 1
		line := strings.TrimSpace(raw)
		if inMulti != "" {
			if strings.Contains(line, inMulti) {
				inMulti = ""
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		switch {
		case strings.HasPrefix(line, "[["):
			end := strings.Index(line, "]]")
			if end < 0 {
				continue
			}
			segs := splitKey(line[2:end])
			if len(segs) == 0 {
				continue
			}
			parent := resolve(counts, segs[:len(segs)-1])
			key := join(parent, segs[len(segs)-1])
			counts[key]++
			prefix = key + "[" + strconv.Itoa(counts[key]-1) + "]"
			ix.set(prefix, lineNo)
			ix.set(key, lineNo)
		case line[0] == '[':
			end := strings.Index(line, "]")
			if end < 0 {
				continue
			}
			prefix = resolve(counts, splitKey(line[1:end]))
			ix.set(prefix, lineNo)
		default:
			eq := strings.Index(line, "=")
			if eq <= 0 {
				continue
			}
			path := prefix
			for _, s := range splitKey(line[:eq]) {
				path = join(path, s)
				ix.set(path, lineNo)
			}
			rest := line[eq+1:]
			for _, delim := range []string{`"""`, `'''`} {
				if n := strings.Count(rest, delim); n%2 == 1 {
					inMulti = delim
				}
			}
		}
	}
	return ix
}

// pathAt returns the longest (most specific) key path defined on line,
// to give a parser error the array indices its own key lacks.
func (ix *sourceIndex) pathAt(line int) string {
	best := ""
	for p, l := range ix.lines {
		if l == line && (len(p) > len(best) || len(p) == len(best) && p < best) {
			best = p
		}
	}
	return best
}

func (ix *sourceIndex) set(path string, line int) {
	if _, ok := ix.lines[path]; !ok {
		ix.lines[path] = line
	}
}

// resolve turns header segments into a path, adding the index of the
// latest element for each segment that names an array of tables, as TOML
// does for [routes.match] after [[routes]].
func resolve(counts map[string]int, segs []string) string {
	path := ""
	for _, s := range segs {
		path = join(path, s)
		if n := counts[path]; n > 0 {
			path += "[" + strconv.Itoa(n-1) + "]"
		}
	}
	return path
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func splitKey(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ".") {
		p = strings.TrimSpace(p)
		p = strings.Trim(p, `"'`)
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// pathStep matches one step of a key path: a name or an [index].
var pathStep = regexp.MustCompile(`\.?([^.\[\]]+)|\[(\d+)\]`)

// Line returns the line defining path, or a best guess: the line of the
// nearest ancestor we indexed, then a forward search for each remaining
// key name (keys inside inline tables and arrays are not indexed).
func (ix *sourceIndex) Line(path string) int {
	if ix == nil {
		return 0
	}
	if l, ok := ix.lines[path]; ok {
		return l
	}
	steps := pathStep.FindAllStringSubmatch(path, -1)
	cut := len(steps)
	line, anc := 0, ""
	for cut > 0 {
		cut--
		anc = ""
		for _, s := range steps[:cut] {
			if s[1] != "" {
				anc = join(anc, s[1])
			} else {
				anc += "[" + s[2] + "]"
			}
		}
		if l, ok := ix.lines[anc]; ok {
			line = l
			break
		}
	}
	if line == 0 {
		// Not even the top-level table is in the file (a key that only a
		// mode preset implies): no line is better than a wrong one.
		return 0
	}
	col := 0
	for _, s := range steps[cut:] {
		if s[1] != "" {
			if l, c := ix.find(s[1], line, col); l > 0 {
				line, col = l, c
			}
			continue
		}
		k, _ := strconv.Atoi(s[2])
		if l, c := ix.element(k, line, col); l > 0 {
			line, col = l, c
		}
	}
	return line
}

var tableHeader = regexp.MustCompile(`^\s*\[\[?\s*[A-Za-z0-9_."' -]+\]\]?\s*(#.*)?$`)

// find returns the line and the column after the first assignment to name
// at or after line from, column col (both from 1 and 0).
func (ix *sourceIndex) find(name string, from, col int) (int, int) {
	re, err := regexp.Compile(`(^|[\s{,.])["']?` + regexp.QuoteMeta(name) + `["']?\s*=`)
	if err != nil {
		return 0, 0
	}
	for i := max(from-1, 0); i < len(ix.text); i++ {
		text := ix.text[i]
		off := 0
		if i == from-1 {
			off = min(col, len(text))
		}
		if i > from-1 && tableHeader.MatchString(text) {
			// The key would belong to another table: it is not in the file.
			return 0, 0
		}
		if loc := re.FindStringIndex(text[off:]); loc != nil {
			return i + 1, off + loc[1]
		}
	}
	return 0, 0
}

// element finds the start of the k-th element of the inline array that
// opens at or after (from, col), counting commas at the array's own depth
// and skipping strings.
func (ix *sourceIndex) element(k, from, col int) (int, int) {
	depth, n := 0, 0
	var quote byte
	for i := max(from-1, 0); i < len(ix.text); i++ {
		text := ix.text[i]
		j := 0
		if i == from-1 {
			j = min(col, len(text))
		}
		for ; j < len(text); j++ {
			ch := text[j]
			switch {
			case quote != 0:
				if ch == '\\' && quote == '"' {
					j++
				} else if ch == quote {
					quote = 0
				}
			case ch == '"' || ch == '\'':
				quote = ch
			case ch == '#':
				j = len(text)
			case ch == '[' || ch == '{':
				depth++
				if depth == 1 && ch == '[' && n == k {
					return i + 1, j + 1
				}
			case ch == ']' || ch == '}':
				depth--
				if depth <= 0 {
					return 0, 0
				}
			case ch == ',' && depth == 1:
				n++
				if n == k {
					return i + 1, j + 1
				}
			}
		}
	}
	return 0, 0
}
