package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"
)

// Failure is the kind of a failed try, as the proxy's retry policy and
// access log name it (Istio's retry_on conditions and Envoy's flags).
type Failure int

const (
	// Other is any failure not listed below.
	Other Failure = iota
	// ConnectFailure: the connection could not be made (refused, dial
	// timeout, TLS or QUIC handshake).
	ConnectFailure
	// Reset: the connection broke before or while the response headers were
	// read (reset, EOF, stream reset other than REFUSED_STREAM).
	Reset
	// RefusedStream: the upstream refused the stream before processing it
	// (HTTP/2 REFUSED_STREAM or GOAWAY, HTTP/3 H3_REQUEST_REJECTED); always
	// safe to retry.
	RefusedStream
	// Timeout: the request's context deadline passed or an I/O timeout hit.
	Timeout
	// Overflow: a circuit breaker limit (max_connections,
	// max_pending_requests, max_requests) refused the try.
	Overflow
	// NoHealthyUpstream: the cluster (or the requested subset) has no
	// endpoint at all.
	NoHealthyUpstream
	// Canceled: the caller canceled the request (client went away).
	Canceled
)

var failureNames = [...]string{
	Other:             "other",
	ConnectFailure:    "connect_failure",
	Reset:             "reset",
	RefusedStream:     "refused_stream",
	Timeout:           "timeout",
	Overflow:          "overflow",
	NoHealthyUpstream: "no_healthy_upstream",
	Canceled:          "canceled",
}

func (f Failure) String() string {
	if int(f) < len(failureNames) {
		return failureNames[f]
	}
	return "unknown"
}

// Error is what Send returns on failure: the failure kind, the
// endpoint tried ("" when none was picked) and the cause.
type Error struct {
	Failure  Failure
	Cluster  string
	Endpoint string
	Err      error
}

func (e *Error) Error() string {
	if e.Endpoint != "" {
		return "upstream cluster " + e.Cluster + " endpoint " + e.Endpoint + ": " + e.Failure.String() + ": " + e.Err.Error()
	}
	return "upstream cluster " + e.Cluster + ": " + e.Failure.String() + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Sentinel causes, so callers can also use errors.Is.
var (
	ErrOverflow          = errors.New("circuit breaker open")
	ErrNoHealthyUpstream = errors.New("no healthy upstream")
	ErrClosed            = errors.New("cluster closed")
)

// dialError marks an error raised while connecting, so Classify can tell a
// refused connect from a reset on an established connection whatever the
// transport wraps it in.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connect: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// Classify returns the Failure kind of an error from Send (or of any
// transport error); nil gives Other.
func Classify(err error) Failure {
	if err == nil {
		return Other
	}
	var ue *Error
	if errors.As(err, &ue) {
		return ue.Failure
	}
	return classify(err)
}

func classify(err error) Failure {
	// Connect errors first: a dial that hit the connect timeout is a
	// connect failure, not the request's timeout.
	var de *dialError
	if errors.As(err, &de) {
		return ConnectFailure
	}
	switch {
	case errors.Is(err, ErrOverflow):
		return Overflow
	case errors.Is(err, ErrNoHealthyUpstream):
		return NoHealthyUpstream
	case errors.Is(err, context.Canceled):
		return Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return Timeout
	}
	var se http2.StreamError
	if errors.As(err, &se) {
		if se.Code == http2.ErrCodeRefusedStream {
			return RefusedStream
		}
		return Reset
	}
	var ga http2.GoAwayError
	if errors.As(err, &ga) {
		return RefusedStream
	}
	var h3 *http3.Error
	if errors.As(err, &h3) {
		if h3.ErrorCode == http3.ErrCodeRequestRejected {
			return RefusedStream
		}
		return Reset
	}
	var qse *quic.StreamError
	if errors.As(err, &qse) {
		if http3.ErrCode(qse.ErrorCode) == http3.ErrCodeRequestRejected {
			return RefusedStream
		}
		return Reset
	}
	var qae *quic.ApplicationError
	if errors.As(err, &qae) {
		return Reset
	}
	var idle *quic.IdleTimeoutError
	if errors.As(err, &idle) {
		return Reset
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return ConnectFailure
	}
	var ce *tls.CertificateVerificationError
	var ue x509.UnknownAuthorityError
	var rh tls.RecordHeaderError
	if errors.As(err, &ce) || errors.As(err, &ue) || errors.As(err, &rh) {
		return ConnectFailure
	}
	if isTimeout(err) {
		return Timeout
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return ConnectFailure
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return Reset
	}
	// net/http reports an idle connection the server closed with an
	// unexported error value only. (HTTP/2 runs on our own codec, whose
	// errors are the typed ones above.)
	if err.Error() == "http: server closed idle connection" {
		return Reset
	}
	return Other
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
