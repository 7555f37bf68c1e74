// Command demo-upstream is the quickstart's backend: it answers every
// request with a JSON echo of what it received, so a curl through sluice
// shows what the proxy and its filters did to the request. -header adds a
// response header (the Kong example's user-service reports SMS usage in
// X-Kong-Limit that way).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"sort"
	"strings"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	name := flag.String("name", "demo", "name reported in responses")
	var extra [][2]string
	flag.Func("header", `a response header to add, "Name: value" (repeatable)`, func(v string) error {
		k, val, ok := strings.Cut(v, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("%q is not Name: value", v)
		}
		extra = append(extra, [2]string{strings.TrimSpace(k), strings.TrimSpace(val)})
		return nil
	})
	flag.Parse()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		for _, h := range extra {
			w.Header().Add(h[0], h[1])
		}
		headers := map[string]string{}
		keys := make([]string, 0, len(r.Header))
		for k := range r.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			headers[k] = strings.Join(r.Header[k], ", ")
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{
			"upstream": *name,
			"method":   r.Method,
			"path":     r.URL.RequestURI(),
			"host":     r.Host,
			"headers":  headers,
		})
	})
	log.Printf("demo upstream %q listening on %s", *name, *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
