package http1

import (
	"fmt"
	"testing"
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
