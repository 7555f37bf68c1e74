package conformance

import (
	"os"
	"strings"
	"testing"
)

// TestTrackedReportIsCurrent checks the committed REPORT.md against what
// the code says it must contain, without running the suites (so it cannot
// flake on a slow or tool-less machine): the library versions go.mod pins,
// every suite, every proxy-wasm ABI case, each known difference from
// known.go marked "FAIL (known)" and nothing else so marked, and no
// unexpected failure. `make test` writes its run's report under
// conformance/work/; `make conformance-report` regenerates the tracked one.
func TestTrackedReportIsCurrent(t *testing.T) {
	raw, err := os.ReadFile("REPORT.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	const fix = " (regenerate it: make conformance-report, then commit conformance/REPORT.md)"
	if v := depVersions(); !strings.Contains(doc, v) {
		t.Errorf("REPORT.md does not name the versions go.mod pins (%s)"+fix, v)
	}
	if strings.Contains(doc, "**FAIL**") {
		t.Errorf("REPORT.md records unexpected failures" + fix)
	}
	sections := reportSections(doc)
	for _, s := range []string{SuiteH2SpecMixed, SuiteH2SpecH2C, SuiteH2SpecTLS, SuiteGRPCH2C, SuiteGRPCTLS, SuiteGRPCFilter, SuiteHTTP3, SuiteABI, SuiteAS} {
		rows, ok := sections[s]
		if !ok {
			t.Errorf("REPORT.md has no section %q"+fix, s)
			continue
		}
		marked := 0
		for _, r := range rows {
			if strings.Contains(r, " | FAIL (known) | ") {
				marked++
			}
		}
		listed := 0
		for c := range known[s] {
			if !hasRow(rows, c, "FAIL (known)") {
				// A known difference h2spec no longer reports (now
				// passing) must leave known.go too.
				t.Errorf("%s: known.go lists %q as a known difference; REPORT.md does not show it failing"+fix, s, c)
				continue
			}
			listed++
		}
		if marked != listed {
			t.Errorf("%s: REPORT.md marks %d cases FAIL (known), known.go lists %d of them"+fix, s, marked, listed)
		}
	}
	abi := sections[SuiteABI]
	cases := abiCases()
	for _, c := range cases {
		if !hasRow(abi, c.name, "") {
			t.Errorf("ABI case %q has no row in REPORT.md"+fix, c.name)
		}
	}
	if len(abi) != len(cases) {
		t.Errorf("REPORT.md has %d proxy-wasm ABI rows, the code %d cases"+fix, len(abi), len(cases))
	}
}

// reportSections maps each "## heading" of a report to its table rows (the
// header and separator rows left out).
func reportSections(doc string) map[string][]string {
	out := map[string][]string{}
	var cur string
	for _, line := range strings.Split(doc, "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			cur = h
			out[cur] = nil
			continue
		}
		if cur == "" || !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| Case |") || strings.HasPrefix(line, "|---") {
			continue
		}
		out[cur] = append(out[cur], line)
	}
	return out
}

// hasRow reports whether rows hold the case, with that result when result
// is not empty.
func hasRow(rows []string, name, result string) bool {
	prefix := "| " + cell(name) + " | " + result
	for _, r := range rows {
		if strings.HasPrefix(r, prefix) {
			return true
		}
	}
	return false
}
