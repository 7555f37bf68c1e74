package conformance

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// moreCases are edge cases that need more than one request helper.
func moreCases() []abiCase {
	return []abiCase{
		trailersOnlyCase("trailers-only request over h2c, trailer declared in a trailer header: headers eos=0, trailers callback", true),
		trailersOnlyCase("trailers-only request over h2c (HEADERS, then HEADERS with END_STREAM, no DATA): headers eos=0, trailers callback", false),
		{
			name:   "response body in many chunks (1 MiB): sizes add up, only the last has end_of_stream",
			ref:    refEnvoy + " (Context::encodeData)",
			script: "",
			run: func(e *abiEnv) error {
				const n = 1 << 20
				r, err := e.get(fmt.Sprintf("/big?n=%d", n))
				if err := ok200(r, err); err != nil {
					return err
				}
				if len(r.body) != n {
					return fmt.Errorf("client got %d bytes", len(r.body))
				}
				if _, err := e.waitLog("p", "eos=1"); err != nil {
					return err
				}
				total, eos, chunks, lastEOS := 0, 0, 0, false
				for _, l := range e.logs("p") {
					if m := sizeRE.FindStringSubmatch(l); m != nil && strings.HasPrefix(l, "response_body ") {
						total += atoi(m[1])
						chunks++
						lastEOS = m[2] == "1"
						if lastEOS {
							eos++
						}
					}
				}
				if total != n || eos != 1 || !lastEOS {
					return fmt.Errorf("%d chunks, %d bytes, %d with end_of_stream; want %d bytes, only the last with end_of_stream", chunks, total, eos, n)
				}
				return nil
			},
		},
		{
			name:   "properties: plugin_root_id, plugin_vm_id, route_name, cluster_name",
			ref:    refEnvoyAttr + " (plugin_root_id, plugin_vm_id, xds.route_name, xds.cluster_name; older names route_name, cluster_name)",
			script: "response_headers: prop_get plugin_root_id | prop_get plugin_vm_id | prop_get route_name | prop_get cluster_name",
			extra:  "root_id = \"rid\"\nvm_id = \"vmx\"",
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/props")); err != nil {
					return err
				}
				return e.ordered("p", "prop_get: status=0 rid", "prop_get: status=0 vmx", "prop_get: status=0 abi", "prop_get: status=0 up")
			},
		},
		{
			name: "WASI fd_write: what a guest writes to stderr (a Go panic) becomes plugin log lines at error level",
			ref:  refCPPHExp + " (writevImpl: stdout -> info, stderr -> error, trailing newline stripped)",
			plugins: fmt.Sprintf(`
[[plugins]]
name = "p"
wasm = %q
config_raw = "trap"
vm = { call_timeout = "5s", instances = 1 }
`, guestWasm("hostile")),
			run: func(e *abiEnv) error {
				r, err := e.get("/trap")
				if err := expectStatus(r, err, 503); err != nil {
					return err
				}
				l, err := e.waitLog("p", "panic")
				if err != nil {
					return err
				}
				if lv, _ := levelOf(e, "p", l); lv != zapcore.ErrorLevel {
					return fmt.Errorf("%q logged at %s, want error", l, lv)
				}
				return nil
			},
		},
		{
			name:     "a module without a proxy_abi_version_* export is refused with a clear error",
			ref:      refCPPHWasm + " (WasmBase::load: \"Missing or unknown Proxy-Wasm ABI version\")",
			plugins:  "", // set in abiCases: needs a file
			startErr: "ABI",
		},
	}
}

// noABIModule writes the smallest valid Wasm module: no exports at all.
func noABIModule() string {
	p := filepath.Join(os.TempDir(), "sluice-conformance-noabi.wasm")
	os.WriteFile(p, []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	return p
}

// h2TrailersOnly sends a request over h2c prior knowledge as HEADERS
// (no END_STREAM) then a trailer HEADERS with END_STREAM and no DATA, and
// returns the response's :status.
func h2TrailersOnly(addr string, declare bool) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		return "", err
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		return "", err
	}
	block := func(fields ...string) []byte {
		var buf bytes.Buffer
		enc := hpack.NewEncoder(&buf)
		for i := 0; i+1 < len(fields); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return buf.Bytes()
	}
	fields := []string{":method", "POST", ":scheme", "http", ":path", "/trailers-only-h2", ":authority", addr}
	if declare {
		fields = append(fields, "trailer", "x-t")
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: block(fields...)}); err != nil {
		return "", err
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, EndStream: true,
		BlockFragment: block("x-t", "v")}); err != nil {
		return "", err
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return "", err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				return f.PseudoValue("status"), nil
			}
		case *http2.RSTStreamFrame:
			return "", fmt.Errorf("stream reset: %v", f.ErrCode)
		case *http2.GoAwayFrame:
			return "", fmt.Errorf("GOAWAY: %v", f.ErrCode)
		}
	}
}

// trailersOnlyCase sends a request of headers then trailers, no body
// (declared: with a Trailer header), and expects request headers with
// end_of_stream=0 followed by the trailers callback.
func trailersOnlyCase(name string, declared bool) abiCase {
	return abiCase{
		name:   name,
		ref:    refEnvoy + " (Context::decodeHeaders end_stream=false, decodeTrailers); RFC 9113 section 8.1",
		script: "request_trailers: hdr_get 1 x-t",
		run: func(e *abiEnv) error {
			status, err := h2TrailersOnly(strings.TrimPrefix(e.base, "http://"), declared)
			if err != nil {
				return err
			}
			if status != "200" {
				return fmt.Errorf("status %s", status)
			}
			l, err := e.line("p", "request_headers n=")
			if err != nil {
				return err
			}
			if !strings.HasSuffix(l, "eos=0") {
				return fmt.Errorf("%q, want end_of_stream=0 (trailers follow)", l)
			}
			return all(e.expectLine("p", "request_trailers n=", "request_trailers n=1"),
				e.expectLine("p", "request_trailers hdr_get", "request_trailers hdr_get: status=0 v"))
		},
	}
}
