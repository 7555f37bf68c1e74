package conformance

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// Row is one case of a suite.
type Row struct {
	Case string
	Pass bool
	// Skipped cases did not run (a tool or the network was missing); Note
	// says why. They never fail the run.
	Skipped bool
	// Ref cites where the expected behaviour comes from (a spec section,
	// Envoy or proxy-wasm source file).
	Ref string
	// Note is what was observed, or why a known difference is one.
	Note string
}

// Suite is one table of the report.
type Suite struct {
	Name  string
	Intro string
	Rows  []Row
}

// Report collects the rows of every suite; safe for concurrent use.
type Report struct {
	mu     sync.Mutex
	suites map[string]*Suite
	order  []string
}

// NewReport returns an empty report.
func NewReport() *Report { return &Report{suites: map[string]*Suite{}} }

// Suite declares a suite (idempotent) and sets its introduction.
func (r *Report) Suite(name, intro string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.suite(name)
	if intro != "" {
		s.Intro = intro
	}
}

func (r *Report) suite(name string) *Suite {
	s, ok := r.suites[name]
	if !ok {
		s = &Suite{Name: name}
		r.suites[name] = s
		r.order = append(r.order, name)
	}
	return s
}

// Add records one case. A failing case listed in Known gets the listed
// reason as its note; Add reports whether the row counts against the run
// (a failure that is not a known difference).
func (r *Report) Add(suite string, row Row) (unexpected bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.suite(suite)
	if !row.Pass && !row.Skipped {
		if why, ok := KnownDifference(suite, row.Case); ok {
			row.Note = strings.TrimSpace("known difference: " + why + " " + paren(row.Note))
		} else {
			unexpected = true
			if why, ok := BugCause(suite, row.Case); ok {
				row.Note = strings.TrimSpace("cause: " + why + " " + paren(row.Note))
			}
		}
	}
	s.Rows = append(s.Rows, row)
	return unexpected
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return "(observed: " + s + ")"
}

// Counts returns pass, fail (known and unexpected) and skipped rows of a suite.
func (s *Suite) Counts() (pass, knownFail, fail, skipped int) {
	for _, row := range s.Rows {
		switch {
		case row.Skipped:
			skipped++
		case row.Pass:
			pass++
		default:
			if _, ok := KnownDifference(s.Name, row.Case); ok {
				knownFail++
			} else {
				fail++
			}
		}
	}
	return
}

// Suites returns the suites in the order they were declared.
func (r *Report) Suites() []*Suite {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Suite, 0, len(r.order))
	for _, n := range r.order {
		out = append(out, r.suites[n])
	}
	return out
}

// WriteMarkdown renders the report, one table per suite, rows sorted in
// the order they were added.
func (r *Report) WriteMarkdown(w io.Writer, header string) error {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("\n## Summary\n\n| Suite | Pass | Known differences | Fail | Skipped |\n|---|---|---|---|---|\n")
	suites := r.Suites()
	for _, s := range suites {
		p, k, f, sk := s.Counts()
		fmt.Fprintf(&b, "| [%s](#%s) | %d | %d | %d | %d |\n", s.Name, anchor(s.Name), p, k, f, sk)
	}
	var failing []string
	for _, s := range suites {
		for _, row := range s.Rows {
			if row.Pass || row.Skipped {
				continue
			}
			if _, ok := KnownDifference(s.Name, row.Case); ok {
				continue
			}
			failing = append(failing, fmt.Sprintf("| %s | %s | %s |\n", cell(s.Name), cell(row.Case), cell(row.Note)))
		}
	}
	if len(failing) > 0 {
		b.WriteString("\n## Failing cases\n\nThese fail the run; each names its cause where it is known.\n\n| Suite | Case | Cause and observation |\n|---|---|---|\n")
		b.WriteString(strings.Join(failing, ""))
	}
	for _, s := range suites {
		fmt.Fprintf(&b, "\n## %s\n\n", s.Name)
		if s.Intro != "" {
			b.WriteString(strings.TrimSpace(s.Intro) + "\n\n")
		}
		refs := false
		for _, row := range s.Rows {
			if row.Ref != "" {
				refs = true
			}
		}
		if refs {
			b.WriteString("| Case | Result | Reference | Notes |\n|---|---|---|---|\n")
		} else {
			b.WriteString("| Case | Result | Notes |\n|---|---|---|\n")
		}
		for _, row := range s.Rows {
			res := "pass"
			switch {
			case row.Skipped:
				res = "skipped"
			case !row.Pass:
				if _, ok := KnownDifference(s.Name, row.Case); ok {
					res = "FAIL (known)"
				} else {
					res = "**FAIL**"
				}
			}
			if refs {
				fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(row.Case), res, cell(row.Ref), cell(row.Note))
			} else {
				fmt.Fprintf(&b, "| %s | %s | %s |\n", cell(row.Case), res, cell(row.Note))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// anchor is GitHub's heading anchor for a suite name.
func anchor(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteRune(c)
		case c == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\r", "")
	s = strings.ReplaceAll(s, "\n", "<br>")
	if len(s) > 1500 {
		s = s[:1500] + "..."
	}
	return s
}

// sortedKeys is a helper for stable output of maps.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
