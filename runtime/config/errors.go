package config

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with a config file. Key is the full key path
// with array indices ("routes[0].timeout"); Line is 0 when the problem has
// no place in the file (a generated listener, say).
type Problem struct {
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
	Key  string `json:"key,omitempty"`
	Msg  string `json:"msg"`
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in one file, so a user fixes them all in
// one pass instead of one per run. Callers branch on it with errors.As.
type Error struct {
	Problems []Problem
}

// Error prints one problem per line, ready for `sluice validate` to print
// as is.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sortProblems orders problems by line so the output reads top to bottom;
// problems without a line go last, in the order they were found.
func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		li, lj := ps[i].Line, ps[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
}
