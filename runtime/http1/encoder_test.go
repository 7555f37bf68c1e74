package http1

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// TestCommitFast holds encoder.commit's common head to the long way
// (commitSlow): the same bytes and the same state for every combination
// of what the two look at.
func TestCommitFast(t *testing.T) {
	type state struct {
		status                                                int
		cl                                                    int64
		streaming, trailers, hasDate, closeAfter, bodyAllowed bool
		keepAlive, shutdown                                   bool
		minor, pending                                        int
	}
	run := func(st state, slow bool) (string, string) {
		c := &conn{srv: new(Server)}
		c.srv.shutdown.Store(st.shutdown)
		e := &c.enc
		e.reset(&Request{KeepAlive: st.keepAlive, Minor: st.minor, Method: []byte("GET")})
		defer e.release()
		e.c = c
		*e.wbuf = append((*e.wbuf)[:0], "HTTP/1.1 200 OK\r\n"...)
		e.status, e.headed, e.cl, e.trailers, e.hasDate, e.closeAfter, e.bodyAllowed =
			st.status, true, st.cl, st.trailers, st.hasDate, st.closeAfter, st.bodyAllowed
		if st.pending > 0 {
			e.pend = bufPool.Get().(*[]byte)
			*e.pend = append((*e.pend)[:0], "body"[:st.pending]...)
		}
		if slow {
			e.commitSlow(st.streaming)
		} else {
			e.commit(st.streaming)
		}
		out := fmt.Sprintf("%+v", struct {
			committed, chunked, closeAfter bool
			cl                             int64
		}{e.committed, e.chunked, e.closeAfter, e.cl})
		return string(*e.wbuf), out
	}
	bools := []bool{false, true}
	n := 0
	for _, status := range []int{200, 204, 101, 304} {
		for _, cl := range []int64{-1, 0, 5} {
			for _, streaming := range bools {
				for _, trailers := range bools {
					for _, hasDate := range bools {
						for _, closeAfter := range bools {
							for _, bodyAllowed := range bools {
								for _, keepAlive := range bools {
									for _, shutdown := range bools {
										for _, minor := range []int{0, 1} {
											for _, pending := range []int{0, 2} {
												st := state{status, cl, streaming, trailers, hasDate, closeAfter, bodyAllowed, keepAlive, shutdown, minor, pending}
												fb, fs := run(st, false)
												sb, ss := run(st, true)
												if hasDate {
													n++
												} else {
													// The Date differs from second to second: compare
													// what follows its line.
													fb, sb = dropDate(fb), dropDate(sb)
												}
												if fb != sb || fs != ss {
													t.Fatalf("%+v: commit %q %s, commitSlow %q %s", st, fb, fs, sb, ss)
												}
											}
										}
									}
								}
							}
						}
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no case compared")
	}
}

func dropDate(s string) string {
	for i := 0; i+6 <= len(s); i++ {
		if s[i:i+6] == "Date: " {
			for j := i; j+1 < len(s); j++ {
				if s[j] == '\r' && s[j+1] == '\n' {
					return s[:i] + s[j+2:]
				}
			}
		}
	}
	return s
}

// TestWriteHeadersFast holds WriteHeaders' common head to the long way
// (writeHeadersSlow): the same bytes and the same encoder state for heads
// near the common one.
func TestWriteHeadersFast(t *testing.T) {
	type field struct {
		name, value string
		checked     bool
	}
	heads := [][]field{
		{{"server", "nginx", true}, {"date", "Sun, 06 Dec 2026 17:00:00 GMT", true}, {"content-type", "text/plain", true}, {"content-length", "20", true}},
		{{"content-length", "20", true}},
		{{"content-length", "x", true}, {"content-length", "3", true}},
		{{"date", "d", true}, {"dave", "d", true}, {"content-lengtx", "1", true}},
		{{"server", "x", false}},
		{{"bad name", "x", false}, {"a", "b", true}},
		{{"connection", "close", true}, {"content-length", "2", true}},
		{{"connection", "keep-alive", true}},
		{{"transfer-encoding", "chunked", true}},
		{{"keep-alive", "timeout=5", true}, {"proxy-connection", "x", true}},
		{{"trailer", "x-sum", true}},
		{{"x-a", "1", true}, {"x-b", "a\r\nb", false}},
		{},
	}
	bools := []bool{false, true}
	for _, status := range []string{"200", "204", "304", "101", "100", "103", "404", "x", ""} {
		for _, fields := range heads {
			for _, head := range bools {
				for _, minor := range []int{0, 1} {
					run := func(slow bool) (string, string) {
						var out strings.Builder
						c := &conn{srv: new(Server), nc: writeConn{&out}, wc: writeConn{&out}}
						s := &c.st
						s.c = c
						e := &c.enc
						method := "GET"
						if head {
							method = "HEAD"
						}
						e.reset(&Request{KeepAlive: true, Minor: minor, Method: []byte(method)})
						defer e.release()
						e.c = c
						h := new(stream.HeaderMap)
						if status != "" {
							h.AddPseudo(stream.PseudoStatus, []byte(status))
						}
						for _, f := range fields {
							if f.checked {
								h.AddParsed([]byte(f.name), []byte(f.value))
							} else {
								h.AddRaw([]byte(f.name), []byte(f.value))
							}
						}
						var err error
						if slow {
							e.mu.Lock()
							err = s.writeHeadersSlow(h, false)
							e.mu.Unlock()
						} else {
							err = s.WriteHeaders(h, false)
						}
						return out.String() + "|" + string(*e.wbuf), fmt.Sprintf("%v %+v", err, struct {
							status                                              int
							headed, committed, chunked, closeAfter, bodyAllowed bool
							hasDate, trailers                                   bool
							cl                                                  int64
						}{e.status, e.headed, e.committed, e.chunked, e.closeAfter, e.bodyAllowed, e.hasDate, e.trailers, e.cl})
					}
					fb, fs := run(false)
					sb, ss := run(true)
					if fb != sb || fs != ss {
						t.Errorf("%s %v head %v minor %d:\nWriteHeaders     %q %s\nwriteHeadersSlow %q %s", status, fields, head, minor, fb, fs, sb, ss)
					}
				}
			}
		}
	}
}

// writeConn is a connection whose writes go to w.
type writeConn struct{ w io.Writer }

func (c writeConn) Write(p []byte) (int, error)    { return c.w.Write(p) }
func (writeConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (writeConn) Close() error                     { return nil }
func (writeConn) LocalAddr() net.Addr              { return nil }
func (writeConn) RemoteAddr() net.Addr             { return nil }
func (writeConn) SetDeadline(time.Time) error      { return nil }
func (writeConn) SetReadDeadline(time.Time) error  { return nil }
func (writeConn) SetWriteDeadline(time.Time) error { return nil }
