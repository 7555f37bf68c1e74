package canary

import (
	"math"
	"strconv"
	"testing"
)

// The Istio example of issue 5: x-canary: true -> v2; otherwise 90/10.
const istio = `{"http":[
 {"match":[{"headers":{"x-canary":{"exact":"true"}}}],"route":[{"destination":{"host":"order-service","subset":"v2"},"weight":100}]},
 {"route":[{"destination":{"host":"order-service","subset":"v1"},"weight":90},{"destination":{"host":"order-service","subset":"v2"},"weight":10}]}]}`

func TestPickHeaderMatchAlwaysWins(t *testing.T) {
	r, err := Parse([]byte(istio))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if got := r.Pick([][2]string{{"x-canary", "true"}}, float64(i)/100); got != "v2" {
			t.Fatalf("roll %d: subset = %q, want v2", i, got)
		}
	}
}

func TestPickWeightedSplit(t *testing.T) {
	r, _ := Parse([]byte(istio))
	counts := map[string]int{}
	const n = 2000
	for i := 0; i < n; i++ {
		counts[r.Pick(nil, (float64(i)+0.5)/n)]++
	}
	if got := float64(counts["v2"]) / n; math.Abs(got-0.10) > 0.03 {
		t.Errorf("v2 share = %.3f, want 0.10 +- 0.03 (counts %v)", got, counts)
	}
	if counts["v1"]+counts["v2"] != n {
		t.Errorf("counts = %v", counts)
	}
}

func TestPickSticky(t *testing.T) {
	r, err := Parse([]byte(`{"sticky":{"cookie":"uid"},"http":[{"route":[{"subset":"a","weight":50},{"subset":"b","weight":50}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for u := 0; u < 50; u++ {
		h := [][2]string{{"cookie", "uid=user-" + strconv.Itoa(u)}}
		first := r.Pick(h, 0)
		for roll := 0.1; roll < 1; roll += 0.2 {
			if got := r.Pick(h, roll); got != first {
				t.Fatalf("user %d moved from %s to %s", u, first, got)
			}
		}
		seen[first] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("50 sticky users all on one subset: %v", seen)
	}
	// No key: falls back to the roll.
	if r.Pick(nil, 0.1) != "a" || r.Pick(nil, 0.9) != "b" {
		t.Error("without a sticky key the roll is not used")
	}
}

func TestPickNoRoute(t *testing.T) {
	r, _ := Parse([]byte(`{"http":[{"match":[{"headers":{"x-beta":{"exact":"1"}}}],"route":[{"subset":"beta"}]}]}`))
	if got := r.Pick(nil, 0.5); got != "" {
		t.Errorf("subset = %q, want none", got)
	}
	if got := r.Pick([][2]string{{"x-beta", "1"}}, 0.5); got != "beta" {
		t.Errorf("subset = %q, want beta (single destination, no weight)", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, cfg := range []string{
		`{"http":[{"route":[]}]}`,
		`{"http":[{"route":[{"weight":10}]}]}`,
		`{"http":[{"route":[{"subset":"a","weight":0},{"subset":"b","weight":0}]}]}`,
		`{"http":[{"route":[{"subset":"a","weight":-1}]}]}`,
		`{"sticky":{}}`,
		`{"http":[{"match":[{"headers":{"x":{"regex":"("}}}],"route":[{"subset":"a"}]}]}`,
		`{"routes":[]}`,
	} {
		if _, err := Parse([]byte(cfg)); err == nil {
			t.Errorf("Parse(%s) succeeded", cfg)
		}
	}
}
