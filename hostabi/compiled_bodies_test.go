package hostabi

import (
	"context"
	"reflect"
	"testing"
)

// The engine frees the function bodies wazero keeps after compiling (5 MB
// for the built-in plugins), and the module still runs. Fails when a
// wazero upgrade moves the fields dropFunctionBodies reaches into.
func TestCompiledModuleBodiesDropped(t *testing.T) {
	ctx := context.Background()
	e, err := NewEngine(ctx, EngineConfig{CacheDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	for _, trusted := range []bool{true, false} {
		cm, err := e.compile(ctx, minimalGuest(), trusted)
		if err != nil {
			t.Fatal(err)
		}
		code := reflect.ValueOf(cm.mod).Elem().FieldByName("module").Elem().FieldByName("CodeSection")
		if code.Len() == 0 {
			t.Fatal("no code section found")
		}
		for i := range code.Len() {
			if n := code.Index(i).FieldByName("Body").Len(); n != 0 {
				t.Fatalf("trusted=%v: function %d keeps a %d-byte body after compiling", trusted, i, n)
			}
		}
		e.release(ctx, cm)
		p, err := e.Load(ctx, PluginConfig{Name: t.Name(), Wasm: minimalGuest(), Trusted: trusted})
		if err != nil {
			t.Fatalf("trusted=%v: loading after the bodies were dropped: %v", trusted, err)
		}
		p.Close(ctx)
	}
}
