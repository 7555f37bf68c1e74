package upstream

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// Request is one try of an upstream request in the stream model: what the
// router filter hands a cluster (Envoy's upstream request). The cluster
// reads it during Send and while the body goes out; it never changes it.
type Request struct {
	// Headers are :method, :path and :authority (the authority the
	// upstream sees; HTTP/1.1 writes it as Host), then the fields to send.
	// The codec owns framing and connection management: content-length,
	// transfer-encoding, connection, keep-alive and host fields are
	// replaced by its own (an upgrade, Connection naming upgrade with an
	// Upgrade field, is kept).
	Headers *stream.HeaderMap

	// Body is a body held whole in memory (a retry's replay buffer): it
	// goes out with the head in one write when it is small, and a try
	// that fails on a reused connection before any response byte may
	// send it again on a fresh one. nil for none.
	Body []byte
	// BodyStream streams a body that is not held whole (instead of Body).
	// The cluster reads it on a goroutine of its own, beside the
	// response, so an upstream may answer before it has read it all (a
	// 413); it is closed when the cluster is done with it if it is an
	// io.Closer.
	BodyStream io.Reader
	// BodyLength is BodyStream's length, or -1 (0 is taken as -1, as
	// net/http does) when it is unknown: HTTP/1.1 sends it chunked.
	// Ignored with Body.
	BodyLength int64
	// Trailers, when not nil, are sent after the body: on HTTP/1.1 the
	// body is then chunked. With BodyStream they are read once it has
	// returned io.EOF, so the caller may fill the map as the body ends.
	Trailers *stream.HeaderMap

	// ProtoMajor is the downstream request's HTTP version (0 means 1): a
	// protocol = "downstream" cluster sends HTTP/2 and HTTP/3 requests
	// over h2, everything else over http1.
	ProtoMajor int

	// Start, when set, is a reading of the clock (runtime/clock's Mono)
	// the caller took just before Send, with nothing that waits in
	// between (the router's upstream timing): the HTTP/1.1 pool ages its
	// idle connections against it rather than reading the clock again. A
	// try that waits for a connection slot reads the clock itself.
	Start time.Duration
}

// bodyLength is the request body's length: 0 for none, -1 unknown.
func (r *Request) bodyLength() int64 {
	switch {
	case r.Body != nil:
		if r.Trailers != nil {
			return -1
		}
		return int64(len(r.Body))
	case r.BodyStream != nil:
		if r.Trailers != nil || r.BodyLength <= 0 {
			return -1
		}
		return r.BodyLength
	case r.Trailers != nil:
		return -1
	}
	return 0
}

// closeStream closes BodyStream when the cluster will not read it.
func (r *Request) closeStream() {
	if c, ok := r.BodyStream.(io.Closer); ok {
		c.Close()
	}
}

// replayable says a try that failed before any response byte, on a
// connection that had served others, may be sent again on a fresh one:
// the server most likely closed the idle connection as the request came
// (net/http does the same). Only bodies held whole, only idempotent
// methods or a request that carries an idempotency key.
func (r *Request) replayable() bool {
	if r.BodyStream != nil {
		return false
	}
	m, _ := r.Headers.GetPseudo(stream.PseudoMethod)
	switch string(m) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return r.Headers.Has("idempotency-key") || r.Headers.Has("x-idempotency-key")
}

func (r *Request) method() []byte {
	m, _ := r.Headers.GetPseudo(stream.PseudoMethod)
	return m
}

// Response is the answer to one Send: a handle, valid until Close. The
// connection behind it and its buffers are reused by later requests once
// it is closed, so a handle that was closed answers nothing (ReadBody
// fails with ErrResponseClosed) rather than another request's data.
//
// Headers, the body bytes and Trailers are read on one goroutine; Close
// may come from another (an aborted stream) and unblocks a ReadBody in
// progress.
type Response struct {
	st  *responseState
	gen uint64
}

// ErrResponseClosed is what a closed Response's ReadBody returns.
var ErrResponseClosed = errors.New("upstream: response already closed")

// responseState is what one exchange holds; an HTTP/1.1 connection keeps
// one and reuses it from request to request.
type responseState struct {
	gen     atomic.Uint64
	reading atomic.Bool

	headers  *stream.HeaderMap
	status   int
	bodyLen  int64
	endpoint string
	src      responseSource
	// h1 is src when it is an HTTP/1.1 connection: the accessors below
	// call it directly, and its small methods are inlined into them,
	// instead of a call through src to a function of its own each.
	h1 *h1Conn

	// The cluster's accounting of the request, which Send sets before
	// the handle exists; ReadBody and Close read it and never write it,
	// so a Close racing a ReadBody is safe. inFlight is the request's time
	// in flight (max_requests, the endpoint's active count), ended by
	// whichever of ReadBody (at the body's end) and Close claims it
	// first; open is the rest (the connection slot, the open try), ended
	// at Close, where the connection is settled. Both are false for an
	// exchange Send did not make (a health check), whose fields may
	// still name an earlier request's: only the flags make them count.
	cl       *Cluster
	ep       *endpoint
	slot     bool
	inFlight atomic.Bool
	open     atomic.Bool
}

// endInFlight ends the request's time in flight, once.
func (s *responseState) endInFlight() {
	if s.inFlight.CompareAndSwap(true, false) {
		s.cl.endRequest(s.ep)
	}
}

// responseSource is a protocol's side of a Response.
type responseSource interface {
	readBody(p []byte) (int, error)
	trailers() *stream.HeaderMap
	// finish settles the exchange once: the connection goes back to its
	// pool if the response was read to its end and nothing is in doubt.
	// aborted says a ReadBody may be running on another goroutine.
	finish(aborted bool)
	// upgrade hands over the connection of a 101 response.
	upgrade() (io.ReadWriteCloser, error)
	// headAt is when the response head was read (a reading of
	// clock.Mono), zero when the protocol does not note it; bodyWithHead
	// says the body bytes read so far came in the reads that brought
	// the head (false when unknown).
	headAt() time.Duration
	bodyWithHead() bool
}

func (s *responseState) handle() Response { return Response{st: s, gen: s.gen.Load()} }

func (r Response) live() bool { return r.st != nil && r.st.gen.Load() == r.gen }

// Status is the response's status code.
func (r Response) Status() int {
	if !r.live() {
		return 0
	}
	return r.st.status
}

// Headers are :status and the response's fields; framing fields are the
// codec's (transfer-encoding is not there; content-length is, when it
// framed the body or describes a HEAD or 304 response's). Valid until
// Close; the caller may change the map in place.
func (r Response) Headers() *stream.HeaderMap {
	if !r.live() {
		return new(stream.HeaderMap)
	}
	return r.st.headers
}

// BodyLength is the body's declared length: 0 when there is none, -1 when
// it is unknown (chunked, read until close, HTTP/2 without
// content-length). A HEAD response has none, whatever its content-length.
func (r Response) BodyLength() int64 {
	if !r.live() {
		return 0
	}
	return r.st.bodyLen
}

// Endpoint is the endpoint ("ip:port") that answered.
func (r Response) Endpoint() string {
	if r.st == nil {
		return ""
	}
	return r.st.endpoint
}

// ReadBody reads body bytes: io.EOF at the end (possibly with the last
// bytes). An upstream that closes mid-body gives io.ErrUnexpectedEOF, a
// framing error its own error; both are sticky, and the connection is
// then closed, never reused. The context given to Send still bounds it.
func (r Response) ReadBody(p []byte) (int, error) {
	st := r.st
	if st == nil {
		return 0, ErrResponseClosed
	}
	// Close may run on another goroutine: either it sees reading set and
	// aborts (closing the connection, which ends this read), or this sees
	// the generation it moved on (Go's atomics are sequentially
	// consistent).
	st.reading.Store(true)
	if st.gen.Load() != r.gen {
		st.reading.Store(false)
		return 0, ErrResponseClosed
	}
	n, err := st.src.readBody(p)
	if err != nil && st.status != http.StatusSwitchingProtocols {
		// The response is complete (io.EOF, which the codecs return
		// with the last bytes when the end is already in: the request
		// stops counting before the proxy writes them to the client) or
		// never will be (a reset, a framing error, the context): either
		// way the request is no longer in flight. Still under reading:
		// a Close now leaves st to this read (it aborts), so the fields
		// endInFlight reads are not reused under it. (A 101 stays in
		// flight until its upgraded stream closes.)
		st.endInFlight()
	}
	st.reading.Store(false)
	return n, err
}

// HeadAt is when the response head was read, a reading of the clock
// (runtime/clock's Mono) taken as it was; zero when the protocol does not
// note it (the caller then reads the clock itself).
func (r Response) HeadAt() time.Duration {
	if !r.live() {
		return 0
	}
	if h := r.st.h1; h != nil {
		return h.headAt()
	}
	return r.st.src.headAt()
}

// BodyWithHead says every body byte ReadBody returned so far came in the
// reads that brought the head: no read of the connection since, so no
// wait for the upstream (the reads' moment is HeadAt's). False when
// unknown.
func (r Response) BodyWithHead() bool {
	if !r.live() {
		return false
	}
	if h := r.st.h1; h != nil {
		return h.bodyWithHead()
	}
	return r.st.src.bodyWithHead()
}

// Body is the body as an io.Reader over ReadBody, for readers that want
// one (io.Copy, io.ReadAll, io.ReadFull).
func (r Response) Body() io.Reader { return responseBody{r} }

type responseBody struct{ r Response }

func (b responseBody) Read(p []byte) (int, error) { return b.r.ReadBody(p) }

// Trailers are the response's trailers once ReadBody has returned io.EOF;
// nil when there were none. Valid until Close.
func (r Response) Trailers() *stream.HeaderMap {
	if !r.live() {
		return nil
	}
	if h := r.st.h1; h != nil {
		return h.trailers()
	}
	return r.st.src.trailers()
}

// Close ends the response: its connection goes back to the pool when the
// body was read to its end and the framing allows, and is closed
// otherwise (a body not read to its end, an error, a framing doubt). What
// the request still holds of the cluster ends here (its connection slot;
// its active count too, unless the body's end or a read error ended that
// already): every Response must be closed. Closing twice is harmless.
func (r Response) Close() error {
	st := r.st
	if st == nil || !st.gen.CompareAndSwap(r.gen, r.gen+1) {
		return nil
	}
	// Everything of st is read before the connection can be handed to
	// the next request, which reuses st.
	cl, slot, open := st.cl, st.slot, st.open.Swap(false)
	st.endInFlight()
	st.src.finish(st.reading.Load())
	if open {
		cl.endTry(slot)
	}
	return nil
}

// Upgrade takes over the connection of a 101 Switching Protocols
// response (HTTP/1.1 only; the request must have asked to upgrade, or
// Send would have failed): reads return what the upstream sent after the
// 101 first, then the connection. The Response is spent; closing the
// returned connection ends the request's hold on the cluster.
func (r Response) Upgrade() (io.ReadWriteCloser, error) {
	st := r.st
	if !r.live() || st.status != http.StatusSwitchingProtocols {
		return nil, errors.New("upstream: Upgrade on a response that is not a live 101")
	}
	if !st.gen.CompareAndSwap(r.gen, r.gen+1) {
		return nil, ErrResponseClosed
	}
	// A 101 has no body and Send leaves it in flight: the upgraded
	// stream holds both halves of the accounting until it closes.
	cl, ep, slot := st.cl, st.ep, st.slot
	open, inFlight := st.open.Swap(false), st.inFlight.Swap(false)
	rwc, err := st.src.upgrade()
	if !open {
		return rwc, err
	}
	u := &upgradedStream{ReadWriteCloser: rwc, c: cl, slot: slot}
	if inFlight {
		u.ep, u.inFlight = ep, true
	}
	if err != nil {
		u.release()
		return nil, err
	}
	return u, nil
}

// upgradedStream holds the request's accounting until the upgraded
// connection closes.
type upgradedStream struct {
	io.ReadWriteCloser
	c        *Cluster
	ep       *endpoint
	slot     bool
	inFlight bool
	done     atomic.Bool
}

func (u *upgradedStream) Close() error {
	err := u.ReadWriteCloser.Close()
	u.release()
	return err
}

func (u *upgradedStream) release() {
	if !u.done.CompareAndSwap(false, true) {
		return
	}
	if u.inFlight {
		u.c.endRequest(u.ep)
	}
	u.c.endTry(u.slot)
}

// streamPool is a protocol's side of Send.
//
// at is a reading of the clock (clock.Mono) taken just before, with
// nothing that waits since (zero: none), for a pool that ages its idle
// connections.
type streamPool interface {
	send(ctx context.Context, req *Request, addr string, at time.Duration) (*responseState, error)
}

// Send sends one try of req to an endpoint of the cluster and returns the
// response head; the body streams from the Response, which must be
// closed. ctx bounds the whole try: waiting as a pending request,
// connecting, writing, the response head and ReadBody until Close (the
// router's per-try timeout is its deadline). An upstream's 1xx responses
// are skipped (at most 10; 101 only answers a request that asked to
// upgrade, and is an error otherwise). Errors are *Error; see Classify.
//
// On a reused HTTP/1.1 connection it allocates nothing.
func (c *Cluster) Send(ctx context.Context, req *Request, pick Pick) (Response, error) {
	ep, slot, waited, err := c.startTry(ctx, c.sendMultiplexed(req), pick)
	if err != nil {
		req.closeStream()
		return Response{}, err
	}
	at := req.Start
	if waited {
		at = 0 // the caller's reading is from before the wait
	}
	st, err := c.spool.send(ctx, req, ep.addr, at)
	if err != nil {
		return Response{}, c.tryFailed(ctx, ep, slot, err)
	}
	c.tryAnswered(ep, st.status)
	st.endpoint = ep.addr
	st.cl, st.ep, st.slot = c, ep, slot
	st.open.Store(true)
	st.inFlight.Store(true)
	if st.bodyLen == 0 && st.status != http.StatusSwitchingProtocols {
		// Nothing to read (HEAD, 204, 304, an empty body): the response
		// is complete with its head.
		st.endInFlight()
	}
	return st.handle(), nil
}

// sendMultiplexed says req goes over a multiplexed connection, which takes
// no http1 connection slot.
func (c *Cluster) sendMultiplexed(req *Request) bool {
	_, ok := c.pool.(*downstreamPool)
	return ok && req.ProtoMajor >= 2
}
