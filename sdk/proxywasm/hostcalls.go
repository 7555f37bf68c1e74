package proxywasm

import (
	"unsafe"

	"github.com/sluice-proxy/sluice/sdk/internal/abi"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// ---- configuration ----

// GetVMConfiguration returns the VM configuration (call it from OnVMStart).
func GetVMConfiguration() ([]byte, error) {
	return getBuffer(abi.BufferVMConfiguration, 0, maxBuffer)
}

// GetPluginConfiguration returns the plugin configuration (call it from
// OnPluginStart). Sluice passes the TOML `config` table as JSON.
func GetPluginConfiguration() ([]byte, error) {
	return getBuffer(abi.BufferPluginConfiguration, 0, maxBuffer)
}

const maxBuffer = 1<<31 - 1

// ---- life cycle, time, ticks ----

// SetTickPeriodMilliSeconds asks for OnTick every period on the current
// plugin context; 0 stops ticks.
func SetTickPeriodMilliSeconds(period uint32) error {
	return statusToError(abi.ProxySetTickPeriodMilliseconds(period))
}

// SetEffectiveContext makes later hostcalls act on contextID, for example a
// stream a plugin context wants to resume from OnTick.
func SetEffectiveContext(contextID uint32) error {
	if err := statusToError(abi.ProxySetEffectiveContext(contextID)); err != nil {
		return err
	}
	current.active = contextID
	return nil
}

// PluginDone tells the host a plugin that returned false from OnPluginDone
// has finished.
func PluginDone() { abi.ProxyDone() }

// GetCurrentTimeNanoseconds is the host's wall clock.
func GetCurrentTimeNanoseconds() (int64, error) {
	var t uint64
	if err := statusToError(abi.ProxyGetCurrentTimeNanoseconds(&t)); err != nil {
		return 0, err
	}
	return int64(t), nil
}

// ---- HTTP request / response headers, trailers, bodies ----

func GetHttpRequestHeaders() ([][2]string, error)  { return getMap(abi.MapHTTPRequestHeaders) }
func GetHttpRequestTrailers() ([][2]string, error) { return getMap(abi.MapHTTPRequestTrailers) }
func GetHttpResponseHeaders() ([][2]string, error) { return getMap(abi.MapHTTPResponseHeaders) }
func GetHttpResponseTrailers() ([][2]string, error) {
	return getMap(abi.MapHTTPResponseTrailers)
}

func ReplaceHttpRequestHeaders(h [][2]string) error  { return setMap(abi.MapHTTPRequestHeaders, h) }
func ReplaceHttpRequestTrailers(h [][2]string) error { return setMap(abi.MapHTTPRequestTrailers, h) }
func ReplaceHttpResponseHeaders(h [][2]string) error { return setMap(abi.MapHTTPResponseHeaders, h) }
func ReplaceHttpResponseTrailers(h [][2]string) error {
	return setMap(abi.MapHTTPResponseTrailers, h)
}

// GetHttpRequestHeader returns one header's value; ErrorStatusNotFound if
// absent.
func GetHttpRequestHeader(key string) (string, error) {
	return getMapValue(abi.MapHTTPRequestHeaders, key)
}
func GetHttpRequestTrailer(key string) (string, error) {
	return getMapValue(abi.MapHTTPRequestTrailers, key)
}
func GetHttpResponseHeader(key string) (string, error) {
	return getMapValue(abi.MapHTTPResponseHeaders, key)
}
func GetHttpResponseTrailer(key string) (string, error) {
	return getMapValue(abi.MapHTTPResponseTrailers, key)
}

// AddHttpRequestHeader adds a value, keeping any existing ones.
func AddHttpRequestHeader(key, value string) error {
	return addMapValue(abi.MapHTTPRequestHeaders, key, value)
}
func AddHttpRequestTrailer(key, value string) error {
	return addMapValue(abi.MapHTTPRequestTrailers, key, value)
}
func AddHttpResponseHeader(key, value string) error {
	return addMapValue(abi.MapHTTPResponseHeaders, key, value)
}
func AddHttpResponseTrailer(key, value string) error {
	return addMapValue(abi.MapHTTPResponseTrailers, key, value)
}

// ReplaceHttpRequestHeader sets a header to one value, adding it if absent.
func ReplaceHttpRequestHeader(key, value string) error {
	return replaceMapValue(abi.MapHTTPRequestHeaders, key, value)
}
func ReplaceHttpRequestTrailer(key, value string) error {
	return replaceMapValue(abi.MapHTTPRequestTrailers, key, value)
}
func ReplaceHttpResponseHeader(key, value string) error {
	return replaceMapValue(abi.MapHTTPResponseHeaders, key, value)
}
func ReplaceHttpResponseTrailer(key, value string) error {
	return replaceMapValue(abi.MapHTTPResponseTrailers, key, value)
}

// RemoveHttpRequestHeader removes every value of a header (no error if absent).
func RemoveHttpRequestHeader(key string) error {
	return removeMapValue(abi.MapHTTPRequestHeaders, key)
}
func RemoveHttpRequestTrailer(key string) error {
	return removeMapValue(abi.MapHTTPRequestTrailers, key)
}
func RemoveHttpResponseHeader(key string) error {
	return removeMapValue(abi.MapHTTPResponseHeaders, key)
}
func RemoveHttpResponseTrailer(key string) error {
	return removeMapValue(abi.MapHTTPResponseTrailers, key)
}

// GetHttpRequestBody reads [start, start+maxSize) of the body seen so far.
func GetHttpRequestBody(start, maxSize int) ([]byte, error) {
	return getBuffer(abi.BufferHTTPRequestBody, start, maxSize)
}
func GetHttpResponseBody(start, maxSize int) ([]byte, error) {
	return getBuffer(abi.BufferHTTPResponseBody, start, maxSize)
}

// ReplaceHttpRequestBody replaces the whole body chunk (buffered body).
func ReplaceHttpRequestBody(body []byte) error {
	return setBuffer(abi.BufferHTTPRequestBody, 0, maxBuffer, body)
}
func AppendHttpRequestBody(data []byte) error {
	return setBuffer(abi.BufferHTTPRequestBody, maxBuffer, 0, data)
}
func PrependHttpRequestBody(data []byte) error {
	return setBuffer(abi.BufferHTTPRequestBody, 0, 0, data)
}
func ReplaceHttpResponseBody(body []byte) error {
	return setBuffer(abi.BufferHTTPResponseBody, 0, maxBuffer, body)
}
func AppendHttpResponseBody(data []byte) error {
	return setBuffer(abi.BufferHTTPResponseBody, maxBuffer, 0, data)
}
func PrependHttpResponseBody(data []byte) error {
	return setBuffer(abi.BufferHTTPResponseBody, 0, 0, data)
}

// ResumeHttpRequest resumes a request paused with ActionPause. From a
// plugin context (OnTick, OnQueueReady) call SetEffectiveContext first; an
// http_call callback already runs as the stream that made the call.
func ResumeHttpRequest() error {
	return statusToError(abi.ProxyContinueStream(abi.StreamHTTPRequest))
}
func ResumeHttpResponse() error {
	return statusToError(abi.ProxyContinueStream(abi.StreamHTTPResponse))
}

// CloseHttpStream resets the stream (proxy_close_stream).
func CloseHttpStream() error {
	return statusToError(abi.ProxyCloseStream(abi.StreamHTTPRequest))
}

// SendHttpResponse answers the request locally; the upstream is never
// contacted (or its response is replaced). gRPCStatus -1 means not gRPC.
// Return ActionPause from the callback that calls it.
func SendHttpResponse(statusCode uint32, headers [][2]string, body []byte, gRPCStatus int32) error {
	h := SerializeMap(headers)
	return statusToError(abi.ProxySendLocalResponse(statusCode, nil, 0,
		abi.BytesPtr(body), uint32(len(body)), abi.BytesPtr(h), uint32(len(h)), gRPCStatus))
}

// ---- http_call ----

// DispatchHttpCall sends a request to a cluster. headers must include
// :method, :path and :authority. The callback runs on the calling context
// when the reply (or a failure: numHeaders == 0) arrives; the stream that
// dispatched it usually returns ActionPause and resumes from the callback.
func DispatchHttpCall(cluster string, headers [][2]string, body []byte, trailers [][2]string,
	timeoutMillisecond uint32, callBack types.HttpCalloutCallBack) (calloutID uint32, err error) {
	rootID, ok := current.rootOf(current.active)
	if !ok {
		return 0, types.ErrorStatusBadArgument
	}
	h := SerializeMap(headers)
	var t []byte
	if len(trailers) > 0 {
		t = SerializeMap(trailers)
	}
	st := abi.ProxyHTTPCall(abi.StringPtr(cluster), uint32(len(cluster)),
		abi.BytesPtr(h), uint32(len(h)), abi.BytesPtr(body), uint32(len(body)),
		abi.BytesPtr(t), uint32(len(t)), timeoutMillisecond, &calloutID)
	if err := statusToError(st); err != nil {
		return 0, err
	}
	current.roots[rootID].callouts[calloutID] = callout{cb: callBack, caller: current.active}
	return calloutID, nil
}

func (s *vmState) rootOf(contextID uint32) (uint32, bool) {
	if _, ok := s.roots[contextID]; ok {
		return contextID, true
	}
	st := s.stream(contextID)
	if st == nil {
		return 0, false
	}
	_, ok := s.roots[st.rootID]
	return st.rootID, ok
}

func GetHttpCallResponseHeaders() ([][2]string, error) {
	return getMap(abi.MapHTTPCallResponseHeaders)
}
func GetHttpCallResponseTrailers() ([][2]string, error) {
	return getMap(abi.MapHTTPCallResponseTrailers)
}
func GetHttpCallResponseBody(start, maxSize int) ([]byte, error) {
	return getBuffer(abi.BufferHTTPCallResponseBody, start, maxSize)
}

// ---- TCP ----

func GetDownstreamData(start, maxSize int) ([]byte, error) {
	return getBuffer(abi.BufferDownstreamData, start, maxSize)
}
func GetUpstreamData(start, maxSize int) ([]byte, error) {
	return getBuffer(abi.BufferUpstreamData, start, maxSize)
}
func AppendDownstreamData(data []byte) error {
	return setBuffer(abi.BufferDownstreamData, maxBuffer, 0, data)
}
func PrependDownstreamData(data []byte) error {
	return setBuffer(abi.BufferDownstreamData, 0, 0, data)
}
func ReplaceDownstreamData(data []byte) error {
	return setBuffer(abi.BufferDownstreamData, 0, maxBuffer, data)
}
func AppendUpstreamData(data []byte) error {
	return setBuffer(abi.BufferUpstreamData, maxBuffer, 0, data)
}
func PrependUpstreamData(data []byte) error {
	return setBuffer(abi.BufferUpstreamData, 0, 0, data)
}
func ReplaceUpstreamData(data []byte) error {
	return setBuffer(abi.BufferUpstreamData, 0, maxBuffer, data)
}

// ContinueTcpStream resumes a connection paused with ActionPause.
func ContinueTcpStream() error {
	return statusToError(abi.ProxyContinueStream(abi.StreamDownstream))
}
func CloseDownstream() error { return statusToError(abi.ProxyCloseStream(abi.StreamDownstream)) }
func CloseUpstream() error   { return statusToError(abi.ProxyCloseStream(abi.StreamUpstream)) }

// ---- shared data ----

// GetSharedData returns a value of the host's shared store and its CAS.
func GetSharedData(key string) (value []byte, cas uint32, err error) {
	var raw *byte
	var size uint32
	st := abi.ProxyGetSharedData(abi.StringPtr(key), uint32(len(key)), unsafe.Pointer(&raw), &size, &cas)
	value = hostBytes(raw, size)
	if err := statusToError(st); err != nil {
		return nil, 0, err
	}
	return value, cas, nil
}

// SetSharedData stores a value. cas 0 writes unconditionally; otherwise the
// write fails with ErrorStatusCasMismatch if another writer got there since
// the GetSharedData that returned cas.
func SetSharedData(key string, data []byte, cas uint32) error {
	return statusToError(abi.ProxySetSharedData(abi.StringPtr(key), uint32(len(key)),
		abi.BytesPtr(data), uint32(len(data)), cas))
}

// ---- shared queues ----

// RegisterSharedQueue creates (or finds) a queue owned by the current plugin
// context; OnQueueReady fires on it.
func RegisterSharedQueue(name string) (uint32, error) {
	var id uint32
	err := statusToError(abi.ProxyRegisterSharedQueue(abi.StringPtr(name), uint32(len(name)), &id))
	return id, err
}

// ResolveSharedQueue finds a queue registered by vmID.
func ResolveSharedQueue(vmID, name string) (uint32, error) {
	var id uint32
	err := statusToError(abi.ProxyResolveSharedQueue(abi.StringPtr(vmID), uint32(len(vmID)),
		abi.StringPtr(name), uint32(len(name)), &id))
	return id, err
}

func EnqueueSharedQueue(queueID uint32, data []byte) error {
	return statusToError(abi.ProxyEnqueueSharedQueue(queueID, abi.BytesPtr(data), uint32(len(data))))
}

// DequeueSharedQueue pops one item; ErrorStatusEmpty when there is none.
func DequeueSharedQueue(queueID uint32) ([]byte, error) {
	var raw *byte
	var size uint32
	st := abi.ProxyDequeueSharedQueue(queueID, unsafe.Pointer(&raw), &size)
	b := hostBytes(raw, size)
	if err := statusToError(st); err != nil {
		return nil, err
	}
	return b, nil
}

// ---- properties ----

// GetProperty reads a property by path segments, e.g.
// []string{"request", "path"}. Values are raw bytes: see properties.go for
// typed helpers.
func GetProperty(path []string) ([]byte, error) {
	p := serializePath(path)
	var raw *byte
	var size uint32
	st := abi.ProxyGetProperty(abi.BytesPtr(p), uint32(len(p)), unsafe.Pointer(&raw), &size)
	b := hostBytes(raw, size)
	if err := statusToError(st); err != nil {
		return nil, err
	}
	return b, nil
}

// SetProperty writes a property by path segments.
func SetProperty(path []string, value []byte) error {
	p := serializePath(path)
	return statusToError(abi.ProxySetProperty(abi.BytesPtr(p), uint32(len(p)),
		abi.BytesPtr(value), uint32(len(value))))
}

// ---- foreign functions ----

// CallForeignFunction calls a host extension by name.
func CallForeignFunction(name string, param []byte) ([]byte, error) {
	var raw *byte
	var size uint32
	st := abi.ProxyCallForeignFunction(abi.StringPtr(name), uint32(len(name)),
		abi.BytesPtr(param), uint32(len(param)), unsafe.Pointer(&raw), &size)
	b := hostBytes(raw, size)
	if err := statusToError(st); err != nil {
		return nil, err
	}
	return b, nil
}

// ---- helpers ----

func getBuffer(bt uint32, start, maxSize int) ([]byte, error) {
	var raw *byte
	var size uint32
	st := abi.ProxyGetBufferBytes(bt, uint32(start), uint32(maxSize), unsafe.Pointer(&raw), &size)
	b := hostBytes(raw, size)
	if err := statusToError(st); err != nil {
		return nil, err
	}
	return b, nil
}

func setBuffer(bt uint32, start, size int, data []byte) error {
	return statusToError(abi.ProxySetBufferBytes(bt, uint32(start), uint32(size),
		abi.BytesPtr(data), uint32(len(data))))
}

func getMap(mt uint32) ([][2]string, error) {
	var raw *byte
	var size uint32
	st := abi.ProxyGetHeaderMapPairs(mt, unsafe.Pointer(&raw), &size)
	b := hostBytes(raw, size)
	if err := statusToError(st); err != nil {
		return nil, err
	}
	return DeserializeMap(b), nil
}

func setMap(mt uint32, pairs [][2]string) error {
	b := SerializeMap(pairs)
	return statusToError(abi.ProxySetHeaderMapPairs(mt, abi.BytesPtr(b), uint32(len(b))))
}

func getMapValue(mt uint32, key string) (string, error) {
	var raw *byte
	var size uint32
	st := abi.ProxyGetHeaderMapValue(mt, abi.StringPtr(key), uint32(len(key)), unsafe.Pointer(&raw), &size)
	b := hostBytes(raw, size)
	if err := statusToError(st); err != nil {
		return "", err
	}
	return string(b), nil
}

func addMapValue(mt uint32, key, value string) error {
	return statusToError(abi.ProxyAddHeaderMapValue(mt, abi.StringPtr(key), uint32(len(key)),
		abi.StringPtr(value), uint32(len(value))))
}

func replaceMapValue(mt uint32, key, value string) error {
	return statusToError(abi.ProxyReplaceHeaderMapValue(mt, abi.StringPtr(key), uint32(len(key)),
		abi.StringPtr(value), uint32(len(value))))
}

func removeMapValue(mt uint32, key string) error {
	return statusToError(abi.ProxyRemoveHeaderMapValue(mt, abi.StringPtr(key), uint32(len(key))))
}

// GetHttpCallResponseHeader returns one header of an http_call reply.
func GetHttpCallResponseHeader(key string) (string, error) {
	return getMapValue(abi.MapHTTPCallResponseHeaders, key)
}
