package listen

import (
	"github.com/sluice-proxy/sluice/runtime/stream"
)

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
