package realhost

import (
	"os"
	"sort"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/plugins/filtertest"
)

// BenchmarkAB compares jwt's cost per request in two or three builds of
// the built-in module (the files SLUICE_AB_A, SLUICE_AB_B and optionally
// SLUICE_AB_C; skipped without them), each side loaded on its own engine
// and the sides alternating within a round, so -count rounds see the
// same load. A new token each request (signed before the timer, two
// goroutines; RS256 signing is slow: -benchtime 1000x), or the same one.
// Besides the mean Wasm time (wasm-us/op) it reports the 10th and 25th
// percentiles of each request's wall time through the harness (p10-us,
// p25-us): on a shared machine a mean moves with the load, those hardly.
func BenchmarkAB(b *testing.B) {
	pa, pb := os.Getenv("SLUICE_AB_A"), os.Getenv("SLUICE_AB_B")
	if pa == "" || pb == "" {
		b.Skip("SLUICE_AB_A and SLUICE_AB_B name the two modules")
	}
	mods := map[string][]byte{}
	sides := []string{"A", "B"}
	paths := map[string]string{"A": pa, "B": pb}
	if pc := os.Getenv("SLUICE_AB_C"); pc != "" {
		sides, paths["C"] = append(sides, "C"), pc
	}
	for n, p := range paths {
		m, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		mods[n] = m
	}
	type abCase struct {
		jwtBenchCase
		fresh bool
	}
	var cases []abCase
	for _, c := range jwtBenchCases(b) {
		if c.alg == "HS256" {
			cases = append(cases, abCase{jwtBenchCase{name: "HS256-again", alg: c.alg, key: c.key, cred: c.cred}, false})
		}
		c.name += "-new"
		cases = append(cases, abCase{c, true})
	}
	for _, c := range cases {
		for _, side := range sides {
			b.Run(c.name+"/"+side, func(b *testing.B) {
				f := filtertest.Load(b, mods[side], c.options())
				n := b.N
				if !c.fresh {
					n = 1
				}
				reqs := c.newTokens(b, n)
				each := make([]float64, b.N)
				before := f.Stats().CallSeconds
				b.ResetTimer()
				cpu := cpuTime()
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					if r := f.Do(reqs[i%n]); r.Local != nil {
						b.Fatalf("answered locally: %+v", r.Local)
					}
					each[i] = time.Since(t0).Seconds()
				}
				b.StopTimer()
				sort.Float64s(each)
				b.ReportMetric(each[len(each)/10]*1e6, "p10-us")
				b.ReportMetric(each[len(each)/4]*1e6, "p25-us")
				b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
				b.ReportMetric((f.Stats().CallSeconds-before)*1e6/float64(b.N), "wasm-us/op")
			})
		}
	}
}
