package listen

import (
	"context"
	"testing"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// startListener serves h on a listener for cfg until the test ends.
func startListener(t *testing.T, cfg config.Listener, h stream.Handler, g Guards) *Listener {
	t.Helper()
	l, err := HTTP(cfg, h, nil, zap.NewNop(), g)
	if err != nil {
		t.Fatal(err)
	}
	l.Serve()
	t.Cleanup(func() { l.Shutdown(context.Background()) })
	return l
}

// streamFunc is a stream.Handler for tests.
type streamFunc func(s stream.ServerStream)

func (f streamFunc) ServeStream(s stream.ServerStream) { f(s) }

// replyText answers s with 200 and body.
func replyText(s stream.ServerStream, body string) {
	var h stream.HeaderMap
	h.Add(stream.Status, "200")
	s.WriteHeaders(&h, false)
	s.WriteBody([]byte(body), true)
}

// requestPath is the stream's :path.
func requestPath(s stream.ServerStream) string {
	p, _ := s.RequestHeaders().Get(stream.Path)
	return string(p)
}
