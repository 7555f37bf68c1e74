package proxywasm

import (
	"strings"

	"github.com/sluice-proxy/sluice/sdk/internal/abi"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// vmState is everything the SDK keeps between callbacks. A Wasm instance is
// single-threaded and the host calls one export at a time, so no locking.
type vmState struct {
	vm types.VMContext

	roots   map[uint32]*rootState
	streams map[uint32]*streamState

	// last caches the stream of the previous callback: a stream's callbacks
	// come one after another, and a map lookup per callback is a
	// measurable part of a Go guest's cost per request.
	lastID uint32
	last   *streamState

	// active is the context whose callback is running: the caller an
	// http_call reply is delivered to.
	active uint32
}

type rootState struct {
	ctx      types.PluginContext
	callouts map[uint32]callout
	grpc     map[uint32]grpcCall

	// What SkipDefaultCallbacks learns: the concrete type of the plugin's
	// HTTP contexts (its interface type word), whether they have differed
	// (then nothing is skipped), and the callbacks seen at their defaults.
	httpType uintptr
	mixed    bool
	skip     uint32
	untold   bool
}

// streamState is one stream: its plugin context and, once its first
// callback said which, its HTTP or TCP context.
type streamState struct {
	rootID uint32
	root   *rootState
	http   types.HttpContext
	tcp    types.TcpContext
}

type callout struct {
	cb     types.HttpCalloutCallBack
	caller uint32
}

var current = newState()

func newState() *vmState {
	return &vmState{
		vm:      &registry{},
		roots:   make(map[uint32]*rootState),
		streams: make(map[uint32]*streamState),
	}
}

// stream returns a live stream's state, or nil.
func (s *vmState) stream(id uint32) *streamState {
	if s.last != nil && s.lastID == id {
		return s.last
	}
	st := s.streams[id]
	if st != nil {
		s.lastID, s.last = id, st
	}
	return st
}

// SetVMContext installs the VM context; call it from init. It replaces
// anything given to SetPluginContext or RegisterPlugin.
func SetVMContext(vm types.VMContext) {
	current.vm = vm
}

// SetPluginContext installs the factory for plugin (root) contexts, whatever
// their root_id.
func SetPluginContext(newPlugin func(contextID uint32) types.PluginContext) {
	RegisterPlugin("", newPlugin)
}

// SetHttpContext is the shortest form: every plugin of this module makes HTTP
// contexts with newHttp and needs no configuration.
func SetHttpContext(newHttp func(contextID uint32) types.HttpContext) {
	SetPluginContext(func(uint32) types.PluginContext { return &httpOnlyPlugin{newHttp: newHttp} })
}

// SetTcpContext is SetHttpContext for network filters.
func SetTcpContext(newTcp func(contextID uint32) types.TcpContext) {
	SetPluginContext(func(uint32) types.PluginContext { return &tcpOnlyPlugin{newTcp: newTcp} })
}

// RegisterPlugin installs the factory for root contexts whose root_id is
// rootID, so one module can hold several plugins. The factory registered
// with rootID "" (SetPluginContext) serves any root_id no other matches.
func RegisterPlugin(rootID string, newPlugin func(contextID uint32) types.PluginContext) {
	r, ok := current.vm.(*registry)
	if !ok {
		r = &registry{}
		current.vm = r
	}
	if r.byRootID == nil {
		r.byRootID = make(map[string]func(uint32) types.PluginContext)
	}
	r.byRootID[rootID] = newPlugin
}

// registry is the VM context behind SetPluginContext and RegisterPlugin:
// it picks the factory by the plugin_root_id property, as upstream SDKs do,
// since proxy_on_context_create does not carry the root_id.
type registry struct {
	types.DefaultVMContext
	byRootID map[string]func(uint32) types.PluginContext
	// rootID reads the root_id; GetPluginRootID unless a test replaces it.
	rootID func() (string, error)
}

func (r *registry) NewPluginContext(contextID uint32) types.PluginContext {
	read := r.rootID
	if read == nil {
		read = GetPluginRootID
	}
	rootID, err := read()
	if err != nil && len(r.byRootID) > 1 {
		LogWarn("reading plugin_root_id: " + err.Error())
	}
	if f, ok := r.byRootID[rootID]; ok {
		return f(contextID)
	}
	if f, ok := r.byRootID[""]; ok {
		return f(contextID)
	}
	known := make([]string, 0, len(r.byRootID))
	for id := range r.byRootID {
		known = append(known, id)
	}
	sortStrings(known)
	return &unknownRoot{rootID: rootID, known: strings.Join(known, ", ")}
}

// unknownRoot refuses its configuration so that a typo in root_id is an
// error at load time, not a filter that silently does nothing.
type unknownRoot struct {
	types.DefaultPluginContext
	rootID, known string
}

func (u *unknownRoot) OnPluginStart(int) types.OnPluginStartStatus {
	LogCritical("no plugin with root_id " + quote(u.rootID) + " in this module (it has: " + u.known + ")")
	return types.OnPluginStartStatusFailed
}

type httpOnlyPlugin struct {
	types.DefaultPluginContext
	newHttp func(uint32) types.HttpContext
}

func (p *httpOnlyPlugin) NewHttpContext(id uint32) types.HttpContext { return p.newHttp(id) }

type tcpOnlyPlugin struct {
	types.DefaultPluginContext
	newTcp func(uint32) types.TcpContext
}

func (p *tcpOnlyPlugin) NewTcpContext(id uint32) types.TcpContext { return p.newTcp(id) }

// sortStrings is an insertion sort: it keeps the sort package (and its
// reflection-based helpers) out of the SDK core.
func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func statusToError(s abi.Status) error {
	switch s {
	case abi.StatusOK:
		return nil
	case abi.StatusNotFound:
		return types.ErrorStatusNotFound
	case abi.StatusBadArgument:
		return types.ErrorStatusBadArgument
	case abi.StatusSerializationFailure:
		return types.ErrorStatusSerializationFailure
	case abi.StatusParseFailure:
		return types.ErrorStatusParseFailure
	case abi.StatusBadExpression:
		return types.ErrorStatusBadExpression
	case abi.StatusInvalidMemoryAccess:
		return types.ErrorStatusInvalidMemoryAccess
	case abi.StatusEmpty:
		return types.ErrorStatusEmpty
	case abi.StatusCasMismatch:
		return types.ErrorStatusCasMismatch
	case abi.StatusResultMismatch:
		return types.ErrorStatusResultMismatch
	case abi.StatusInternalFailure:
		return types.ErrorStatusInternalFailure
	case abi.StatusBrokenConnection:
		return types.ErrorStatusBrokenConnection
	case abi.StatusUnimplemented:
		return types.ErrorStatusUnimplemented
	}
	return types.ErrorStatusUnknown
}
