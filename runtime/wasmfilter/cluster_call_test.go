package wasmfilter

import (
	"context"
	"io"
	"strings"

	"github.com/sluice-proxy/sluice/runtime/stream"
	"github.com/sluice-proxy/sluice/runtime/upstream"
)

// ClusterCallsForTest binds calls to m's clusters as the server does.
func ClusterCallsForTest(m *upstream.Manager) func(string) (ClusterCall, bool) {
	return func(name string) (ClusterCall, bool) {
		c := m.Cluster(name)
		if c == nil {
			return nil, false
		}
		return func(ctx context.Context, r *CallRequest) (CallResponse, error) {
			resp, err := c.Send(ctx, &upstream.Request{Headers: r.Headers, Body: r.Body, BodyStream: r.BodyStream,
				Trailers: r.Trailers, ProtoMajor: r.ProtoMajor}, upstream.Pick{})
			if err != nil {
				return nil, err
			}
			return resp, nil
		}, true
	}
}

// fakeResponse is a CallResponse with no body or trailers.
type fakeResponse struct {
	status  int
	headers *stream.HeaderMap
}

func (r fakeResponse) Status() int                 { return r.status }
func (r fakeResponse) Headers() *stream.HeaderMap  { return r.headers }
func (r fakeResponse) Body() io.Reader             { return strings.NewReader("") }
func (r fakeResponse) Trailers() *stream.HeaderMap { return nil }
func (r fakeResponse) Close() error                { return nil }
