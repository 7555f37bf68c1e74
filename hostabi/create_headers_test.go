package hostabi

import (
	"context"
	"encoding/binary"
	"slices"
	"testing"
)

// Callback codes the journal guest records.
const (
	jCreate = iota + 1
	jRequestHeaders
	jResponseHeaders
	jLog
	jDone
	jDelete
	jCreateRequestHeaders
)

// journal is the body of an export that appends each value (an
// instruction sequence leaving an i32) to the guest's journal: memory[0]
// holds the count, the entries follow.
func journal(vals ...[]byte) []byte {
	var b []byte
	for _, v := range vals {
		b = append(b, i32c(0)...)
		b = append(b, 0x28, 0x02, 0x00) // i32.load: the count
		b = append(b, i32c(4)...)
		b = append(b, 0x6c) // i32.mul
		b = append(b, i32c(4)...)
		b = append(b, 0x6a) // i32.add: the entry's address
		b = append(b, v...)
		b = append(b, 0x36, 0x02, 0x00) // i32.store
		b = append(b, i32c(0)...)
		b = append(b, i32c(0)...)
		b = append(b, 0x28, 0x02, 0x00)
		b = append(b, i32c(1)...)
		b = append(b, 0x6a)
		b = append(b, 0x36, 0x02, 0x00) // count++
	}
	return b
}

func localGet(i byte) []byte { return []byte{0x20, i} }

// journalGuest records its stream callbacks (code, then context id) and
// exports sluice_on_context_create_request_headers with the given
// signature (nil: not at all).
func journalGuest(createHeadersParams []byte) []byte {
	funcs := []wasmFunc{
		{export: "proxy_abi_version_0_2_1"},
		{export: "proxy_on_memory_allocate", params: []byte{i32}, results: []byte{i32}, body: []byte{0x41, 0x80, 0x08}},
		{export: "proxy_on_context_create", params: []byte{i32, i32},
			// Root contexts (parent 0) are not journaled.
			body: cat(localGet(1), []byte{0x04, 0x40}, journal(i32c(jCreate), localGet(0), localGet(1)), []byte{0x0b})},
		{export: "proxy_on_request_headers", params: []byte{i32, i32, i32}, results: []byte{i32},
			body: cat(journal(i32c(jRequestHeaders), localGet(0), localGet(2)), i32c(0))},
		{export: "proxy_on_response_headers", params: []byte{i32, i32, i32}, results: []byte{i32},
			body: cat(journal(i32c(jResponseHeaders), localGet(0)), i32c(0))},
		{export: "proxy_on_log", params: []byte{i32}, body: journal(i32c(jLog), localGet(0))},
		{export: "proxy_on_done", params: []byte{i32}, results: []byte{i32}, body: cat(journal(i32c(jDone), localGet(0)), i32c(1))},
		{export: "proxy_on_delete", params: []byte{i32}, body: journal(i32c(jDelete), localGet(0))},
	}
	switch len(createHeadersParams) {
	case 0:
	case 4:
		funcs = append(funcs, wasmFunc{export: "sluice_on_context_create_request_headers", params: createHeadersParams,
			results: []byte{i32}, body: cat(journal(i32c(jCreateRequestHeaders), localGet(0), localGet(1), localGet(3)), i32c(0))})
	default:
		funcs = append(funcs, wasmFunc{export: "sluice_on_context_create_request_headers", params: createHeadersParams,
			results: []byte{i32}, body: i32c(0)})
	}
	return buildModule(funcs...)
}

// readJournal returns what the plugin's one instance journaled and
// empties the journal.
func readJournal(t *testing.T, p *Plugin) []uint32 {
	t.Helper()
	p.vm.mu.Lock()
	in := p.vm.insts[0]
	p.vm.mu.Unlock()
	in.mu.Lock()
	defer in.mu.Unlock()
	n, _ := in.mem.ReadUint32Le(0)
	b, _ := in.mem.Read(4, 4*n)
	out := make([]uint32, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	in.mem.WriteUint32Le(0, 0)
	return out
}

// TestCreateWithRequestHeaders: a module that exports
// sluice_on_context_create_request_headers gets a stream's context
// created with its request headers, in one call, with the root's id and
// end_of_stream; the order Envoy calls the ABI's callbacks in is kept when
// the request headers never reach the filter or the plugin skips them,
// and a module whose export has other parameters gets the ABI's two
// callbacks.
func TestCreateWithRequestHeaders(t *testing.T) {
	const root = 1
	stream := uint32(2) // the first stream's id
	cases := []struct {
		name   string
		guest  []byte
		skip   uint32 // the plugin's sluice_skip_callbacks mask
		run    func(hs *HTTPStream)
		want   func(id uint32) []uint32
		called uint64 // entries into the guest
	}{
		{"request headers", journalGuest([]byte{i32, i32, i32, i32}), 0, func(hs *HTTPStream) {
			hs.OnRequestHeaders(true)
			hs.OnResponseHeaders(true)
			hs.OnDone()
		}, func(id uint32) []uint32 {
			return []uint32{jCreateRequestHeaders, id, root, 1, jResponseHeaders, id, jDone, id, jDelete, id}
		}, 4},
		{"chain stopped before the filter", journalGuest([]byte{i32, i32, i32, i32}), 0, func(hs *HTTPStream) {
			hs.OnResponseHeaders(true)
			hs.OnLog()
			hs.OnDone()
		}, func(id uint32) []uint32 {
			return []uint32{jCreate, id, root, jResponseHeaders, id, jLog, id, jDone, id, jDelete, id}
		}, 5},
		{"never entered", journalGuest([]byte{i32, i32, i32, i32}), 0, func(hs *HTTPStream) {
			hs.OnDone()
		}, func(id uint32) []uint32 {
			return []uint32{jCreate, id, root, jDone, id, jDelete, id}
		}, 3},
		{"request headers skipped", journalGuest([]byte{i32, i32, i32, i32}), 1 << 0, func(hs *HTTPStream) {
			hs.OnRequestHeaders(true)
			hs.OnResponseHeaders(false)
			hs.OnDone()
		}, func(id uint32) []uint32 {
			return []uint32{jCreate, id, root, jResponseHeaders, id, jDone, id, jDelete, id}
		}, 4},
		{"no such export", journalGuest(nil), 0, func(hs *HTTPStream) {
			hs.OnRequestHeaders(false)
			hs.OnDone()
		}, func(id uint32) []uint32 {
			return []uint32{jCreate, id, root, jRequestHeaders, id, 0, jDone, id, jDelete, id}
		}, 4},
		{"export with other parameters", journalGuest([]byte{i32, i32, i32}), 0, func(hs *HTTPStream) {
			hs.OnRequestHeaders(false)
			hs.OnDone()
		}, func(id uint32) []uint32 {
			return []uint32{jCreate, id, root, jRequestHeaders, id, 0, jDone, id, jDelete, id}
		}, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := testEngine.Load(context.Background(), PluginConfig{Name: t.Name(), Wasm: c.guest, Instances: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(context.Background())
			if c.skip != 0 {
				in := p.vm.insts[0]
				in.mu.Lock()
				in.roots[in.rootOf[p]].skip = c.skip << cbRequestHeaders
				in.mu.Unlock()
			}
			s := newTestStream()
			s.set(ResponseHeaders, [2]string{":status", "200"})
			for i := range 2 { // the second stream: the first one left nothing behind
				readJournal(t, p)
				before := p.Stats().Calls
				hs, err := p.NewHTTPStream(context.Background(), s)
				if err != nil {
					t.Fatal(err)
				}
				c.run(hs)
				if got, want := readJournal(t, p), c.want(stream+uint32(i)); !slices.Equal(got, want) {
					t.Errorf("stream %d: the guest saw %v, want %v", i, got, want)
				}
				if got := p.Stats().Calls - before; got != c.called {
					t.Errorf("stream %d: %d calls into the guest, want %d", i, got, c.called)
				}
			}
		})
	}
}
