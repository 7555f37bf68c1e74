package hostabi

import (
	"reflect"
	"unsafe"

	"github.com/tetratelabs/wazero"
)

// dropFunctionBodies frees the copy of every function's bytecode that
// wazero keeps in a compiled module: wazero reads the bodies only to
// validate and compile them (both done when CompileModule returns), yet
// keeps them as long as the module, 5 MB of Go heap for the built-in
// plugins. wazero has no option for it, so this reaches into its
// unexported fields (wazero v1.12: compiledModule.module.CodeSection[i].Body
// and LocalTypes); if they are not where it expects, it changes nothing
// and reports false (TestCompiledModuleBodiesDropped fails on a wazero
// upgrade that moves them).
func dropFunctionBodies(cm wazero.CompiledModule) bool {
	module, ok := wazeroModule(cm)
	if !ok {
		return false
	}
	code := module.FieldByName("CodeSection")
	if !code.IsValid() || code.Kind() != reflect.Slice {
		return false
	}
	code = reflect.NewAt(code.Type(), unsafe.Pointer(code.UnsafeAddr())).Elem()
	if code.Len() == 0 {
		return true
	}
	fn := code.Index(0)
	body, locals := fn.FieldByName("Body"), fn.FieldByName("LocalTypes")
	if !body.IsValid() || body.Kind() != reflect.Slice || !locals.IsValid() || locals.Kind() != reflect.Slice {
		return false
	}
	for i := range code.Len() {
		fn := code.Index(i)
		fn.FieldByName("Body").SetZero()
		fn.FieldByName("LocalTypes").SetZero()
	}
	return true
}

// wazeroModule is the module wazero decoded for a compiled module (the
// struct wasm.Module, unexported), or false if it is not where wazero
// v1.12 keeps it (compiledModule.module).
func wazeroModule(cm wazero.CompiledModule) (reflect.Value, bool) {
	v := reflect.ValueOf(cm)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	module := v.Elem().FieldByName("module")
	if !module.IsValid() || module.Kind() != reflect.Pointer || module.IsNil() || module.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	return module.Elem(), true
}
