//go:build !wasip1

package abi

import "unsafe"

// Native stand-ins for the hostcalls: there is no host outside a Wasm VM, so
// every call reports StatusUnimplemented (proxy_log succeeds silently). They
// exist so that filters compile, vet and unit-test their pure logic natively.
// Generated from hostcalls_wasip1.go; keep the two in step.

func ProxyLog(level uint32, msg unsafe.Pointer, msgLen uint32) Status {
	return StatusOK
}

func ProxyGetLogLevel(level *uint32) Status {
	return StatusUnimplemented
}

func ProxySetEffectiveContext(contextID uint32) Status {
	return StatusUnimplemented
}

func ProxyDone() Status {
	return StatusUnimplemented
}

func ProxyGetCurrentTimeNanoseconds(ns *uint64) Status {
	return StatusUnimplemented
}

func ProxySetTickPeriodMilliseconds(ms uint32) Status {
	return StatusUnimplemented
}

func ProxyGetBufferBytes(bufferType, start, maxSize uint32, data unsafe.Pointer, size *uint32) Status {
	return StatusUnimplemented
}

func ProxySetBufferBytes(bufferType, start, size uint32, data unsafe.Pointer, dataSize uint32) Status {
	return StatusUnimplemented
}

func ProxyGetBufferStatus(bufferType uint32, size *uint32, flags *uint32) Status {
	return StatusUnimplemented
}

func ProxyGetHeaderMapSize(mapType uint32, size *uint32) Status {
	return StatusUnimplemented
}

func ProxyGetHeaderMapPairs(mapType uint32, data unsafe.Pointer, size *uint32) Status {
	return StatusUnimplemented
}

func ProxySetHeaderMapPairs(mapType uint32, data unsafe.Pointer, size uint32) Status {
	return StatusUnimplemented
}

func ProxyGetHeaderMapValue(mapType uint32, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize *uint32) Status {
	return StatusUnimplemented
}

func ProxyAddHeaderMapValue(mapType uint32, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32) Status {
	return StatusUnimplemented
}

func ProxyReplaceHeaderMapValue(mapType uint32, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32) Status {
	return StatusUnimplemented
}

func ProxyRemoveHeaderMapValue(mapType uint32, key unsafe.Pointer, keySize uint32) Status {
	return StatusUnimplemented
}

func ProxyContinueStream(streamType uint32) Status {
	return StatusUnimplemented
}

func ProxyCloseStream(streamType uint32) Status {
	return StatusUnimplemented
}

func ProxyGetStatus(code *uint32, msg unsafe.Pointer, msgSize *uint32) Status {
	return StatusUnimplemented
}

func ProxySendLocalResponse(statusCode uint32, details unsafe.Pointer, detailsSize uint32, body unsafe.Pointer, bodySize uint32, headers unsafe.Pointer, headersSize uint32, grpcStatus int32) Status {
	return StatusUnimplemented
}

func ProxyHTTPCall(upstream unsafe.Pointer, upstreamSize uint32, headers unsafe.Pointer, headersSize uint32, body unsafe.Pointer, bodySize uint32, trailers unsafe.Pointer, trailersSize uint32, timeoutMs uint32, calloutID *uint32) Status {
	return StatusUnimplemented
}

func ProxySetSharedData(key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32, cas uint32) Status {
	return StatusUnimplemented
}

func ProxyGetSharedData(key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize *uint32, cas *uint32) Status {
	return StatusUnimplemented
}

func ProxyRegisterSharedQueue(name unsafe.Pointer, nameSize uint32, queueID *uint32) Status {
	return StatusUnimplemented
}

func ProxyResolveSharedQueue(vmID unsafe.Pointer, vmIDSize uint32, name unsafe.Pointer, nameSize uint32, queueID *uint32) Status {
	return StatusUnimplemented
}

func ProxyEnqueueSharedQueue(queueID uint32, value unsafe.Pointer, valueSize uint32) Status {
	return StatusUnimplemented
}

func ProxyDequeueSharedQueue(queueID uint32, value unsafe.Pointer, valueSize *uint32) Status {
	return StatusUnimplemented
}

func ProxyDefineMetric(metricType uint32, name unsafe.Pointer, nameSize uint32, metricID *uint32) Status {
	return StatusUnimplemented
}

func ProxyRecordMetric(metricID uint32, value uint64) Status {
	return StatusUnimplemented
}

func ProxyIncrementMetric(metricID uint32, delta int64) Status {
	return StatusUnimplemented
}

func ProxyGetMetric(metricID uint32, value *uint64) Status {
	return StatusUnimplemented
}

func ProxyGetProperty(path unsafe.Pointer, pathSize uint32, value unsafe.Pointer, valueSize *uint32) Status {
	return StatusUnimplemented
}

func ProxySetProperty(path unsafe.Pointer, pathSize uint32, value unsafe.Pointer, valueSize uint32) Status {
	return StatusUnimplemented
}

func ProxyCallForeignFunction(name unsafe.Pointer, nameSize uint32, args unsafe.Pointer, argsSize uint32, result unsafe.Pointer, resultSize *uint32) Status {
	return StatusUnimplemented
}

func ProxyGrpcCall(upstream unsafe.Pointer, upstreamSize uint32, service unsafe.Pointer, serviceSize uint32, method unsafe.Pointer, methodSize uint32, metadata unsafe.Pointer, metadataSize uint32, message unsafe.Pointer, messageSize uint32, timeoutMs uint32, token *uint32) Status {
	return StatusUnimplemented
}

func ProxyGrpcStream(upstream unsafe.Pointer, upstreamSize uint32, service unsafe.Pointer, serviceSize uint32, method unsafe.Pointer, methodSize uint32, metadata unsafe.Pointer, metadataSize uint32, token *uint32) Status {
	return StatusUnimplemented
}

func ProxyGrpcSend(token uint32, message unsafe.Pointer, messageSize uint32, endStream uint32) Status {
	return StatusUnimplemented
}

func ProxyGrpcCancel(token uint32) Status {
	return StatusUnimplemented
}

func ProxyGrpcClose(token uint32) Status {
	return StatusUnimplemented
}
