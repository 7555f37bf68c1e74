package hostabi

import (
	"context"
	"strings"
	"testing"
	"time"
)

// guestWith is a minimal guest whose proxy_on_request_headers runs body
// (then returns Continue).
func guestWith(body []byte) []byte {
	return buildModule(
		wasmFunc{export: "proxy_abi_version_0_2_1"},
		wasmFunc{export: "proxy_on_memory_allocate", params: []byte{i32}, results: []byte{i32}, body: []byte{0x41, 0x80, 0x08}},
		wasmFunc{export: "proxy_on_context_create", params: []byte{i32, i32}},
		wasmFunc{export: "proxy_on_request_headers", params: []byte{i32, i32, i32}, results: []byte{i32},
			body: append(body, 0x41, 0x00)},
	)
}

// TestLoadRefusesWhatTheRewriteWouldAdd: the deadline rewrite appends two
// globals (the budget and the interrupt flag) after the module's own. A
// module that names a global, function, table or segment it does not
// declare is invalid as written; rewritten, it could reach the budget and
// the flag (keep the budget from ever running out and the flag down: one
// request then spins a core for good and, since the guest never exits to
// Go, stalls every garbage collection, so the whole process). Each is
// refused at load, before the rewrite, with an error naming the index.
func TestLoadRefusesWhatTheRewriteWouldAdd(t *testing.T) {
	for name, tc := range map[string]struct {
		body []byte
		want string
	}{
		// The module declares no globals: 0 and 1 would be the budget
		// and the flag after the rewrite.
		"write the budget": {cat(i32c(0), []byte{0x24, 0x00}), "global 0 is not declared (the module has 0)"},
		"clear the flag":   {cat(i32c(0), []byte{0x24, 0x01}), "global 1 is not declared (the module has 0)"},
		"read the flag":    {[]byte{0x23, 0x01, 0x1a}, "global 1 is not declared (the module has 0)"},
		"spin with the budget held up": {cat([]byte{0x03, 0x40}, i32c(60), []byte{0x24, 0x00}, i32c(0), []byte{0x24, 0x01, 0x0c, 0x00, 0x0b}),
			"global 0 is not declared (the module has 0)"},
		"call past the functions":    {call(4), "function 4 is not declared (the module has 4)"},
		"ref.func past them":         {[]byte{0xd2, 0x09, 0x1a}, "function 9 is not declared (the module has 4)"},
		"call_indirect, no table":    {cat(i32c(0), []byte{0x11, 0x00, 0x00}), "table 0 is not declared (the module has 0)"},
		"table.get, no table":        {cat(i32c(0), []byte{0x25, 0x00, 0x1a}), "table 0 is not declared (the module has 0)"},
		"table.size, no table":       {[]byte{0xfc, 16, 0x00, 0x1a}, "table 0 is not declared (the module has 0)"},
		"elem.drop, no segment":      {[]byte{0xfc, 13, 0x00}, "element segment 0 is not declared (the module has 0)"},
		"data.drop, no segment":      {[]byte{0xfc, 9, 0x00}, "data segment 0 is not declared (the module has 0)"},
		"memory 1":                   {cat(i32c(0), []byte{0x40, 0x01, 0x1a}), "memory 1 is not declared (the module has 1)"},
		"local past the locals":      {[]byte{0x20, 0x03, 0x1a}, "local 3 is not declared (the function has 3)"},
		"branch out of the function": {[]byte{0x0c, 0x01}, "branch to label 1 at block depth 1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := testEngine.Load(context.Background(), PluginConfig{Name: t.Name(), Wasm: guestWith(tc.body)})
			if err == nil || !strings.Contains(err.Error(), "invalid Wasm module") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v; want an invalid module naming %q", err, tc.want)
			}
			if CheckModule(guestWith(tc.body)) == nil {
				t.Error("CheckModule accepts it")
			}
		})
	}
	// The same guest with nothing out of range loads.
	p, err := testEngine.Load(context.Background(), PluginConfig{Name: t.Name(), Wasm: guestWith(nil)})
	if err != nil {
		t.Fatal(err)
	}
	p.Close(context.Background())
}

// TestStartFunctionUnderDeadline: wazero runs a module's start function
// while instantiating it, where no deadline is armed: one that never
// returned held the load (a start, a hot load, a new instance) for good,
// spinning a core. The rewrite exports it instead and the host runs it
// under the start-up deadline: the load fails with a timeout.
func TestStartFunctionUnderDeadline(t *testing.T) {
	spin := withStart(buildModule(
		wasmFunc{export: "proxy_abi_version_0_2_1"},
		wasmFunc{export: "proxy_on_memory_allocate", params: []byte{i32}, results: []byte{i32}, body: []byte{0x41, 0x80, 0x08}},
		wasmFunc{body: []byte{0x03, 0x40, 0x0c, 0x00, 0x0b}}, // loop br 0 end
	), 2)
	done := make(chan error, 1)
	go func() {
		p, err := testEngine.Load(context.Background(), PluginConfig{Name: t.Name(), Wasm: spin, StartTimeout: 100 * time.Millisecond})
		if err == nil {
			p.Close(context.Background())
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "the start function") || !strings.Contains(err.Error(), "timeout") {
			t.Fatalf("Load: %v; want the start function's timeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the load did not return: the start function ran without a deadline")
	}
	// A start function that returns lets the load go on.
	ok := withStart(buildModule(
		wasmFunc{export: "proxy_abi_version_0_2_1"},
		wasmFunc{export: "proxy_on_memory_allocate", params: []byte{i32}, results: []byte{i32}, body: []byte{0x41, 0x80, 0x08}},
		wasmFunc{body: []byte{0x41, 0x08, 0x41, 0x2a, 0x36, 0x02, 0x00}}, // i32.store [8] = 42
	), 2)
	p, err := testEngine.Load(context.Background(), PluginConfig{Name: t.Name() + "-ok", Wasm: ok})
	if err != nil {
		t.Fatal(err)
	}
	p.Close(context.Background())
}
