package hostabi

import (
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// RequestIDer is what a StreamHost implements to name its stream in the
// log line of a trap or deadline (Envoy's x-request-id). A host without it
// is asked for the request's x-request-id header instead.
type RequestIDer interface {
	RequestID() string
}

// failureFields are what the log line of a broken instance carries beyond
// the plugin and callback: the source digest of its module, the request
// id of the stream whose callback broke it ("" for the root context's
// callbacks: ticks, call replies, queues, start-up) and the Wasm stack,
// one frame per entry.
func (in *instance) failureFields(p *Plugin, err error) []zap.Field {
	digest := in.vm.sha
	if p != nil && p.cfg.SourceDigest != "" {
		digest = p.cfg.SourceDigest
	}
	msg, stack := splitStack(err.Error())
	return []zap.Field{
		zap.String("digest", digest),
		zap.String("request_id", in.requestID()),
		zap.String("error", msg),
		zap.Strings("wasm_stack", in.symbolize(stack)),
	}
}

// requestID is the request id of the effective context's stream, if it is
// an HTTP stream. Callers hold mu.
func (in *instance) requestID() string {
	s := in.streams.get(in.effective)
	if s == nil || s.network || s.host == nil {
		return ""
	}
	if r, ok := s.host.(RequestIDer); ok {
		return r.RequestID()
	}
	if h := s.host.Headers(RequestHeaders); h != nil {
		id, _ := h.GetBytes([]byte("x-request-id"))
		return string(id)
	}
	return ""
}

// splitStack separates wazero's error text from the stack trace it
// appends ("\nwasm stack trace:\n\t<frame>\n\t<frame>..."). An exit or a
// deadline enforced by closing the module (for modules the deadline
// rewrite refuses) carries no stack.
func splitStack(s string) (msg string, frames []string) {
	const marker = "\nwasm stack trace:\n"
	i := strings.Index(s, marker)
	if i < 0 {
		return s, nil
	}
	msg, rest := s[:i], s[i+len(marker):]
	// A Go runtime error inside a host function adds the Go stack after a
	// blank line; it belongs to the message, not the Wasm stack.
	if j := strings.Index(rest, "\n\n"); j >= 0 {
		msg += rest[j:]
		rest = rest[:j]
	}
	for _, f := range strings.Split(rest, "\n") {
		if f = strings.TrimSpace(f); f != "" {
			frames = append(frames, f)
		}
	}
	// What wraps the error (FailureError, the start-up step) comes before
	// wazero's text; what follows the stack (an outer %w) is kept too.
	return msg, frames
}

// symbolize names the frames wazero could not: it writes a function
// without a name in the name section as ".$INDEX(...)"; where that
// function is exported, "(exported as NAME)" is added. Frames lose the leading
// "." of the (empty) module name.
func (in *instance) symbolize(frames []string) []string {
	var exports map[uint32]string
	for i, f := range frames {
		f = strings.TrimPrefix(f, ".")
		if strings.HasPrefix(f, "$") {
			end := strings.IndexAny(f, "( ")
			if end < 0 {
				end = len(f)
			}
			if idx, err := strconv.ParseUint(f[1:end], 10, 32); err == nil {
				if exports == nil {
					exports = map[uint32]string{}
					for name, d := range in.cm.mod.ExportedFunctions() {
						exports[d.Index()] = name
					}
				}
				if name, ok := exports[uint32(idx)]; ok {
					f += " (exported as " + name + ")"
				}
			}
		}
		frames[i] = f
	}
	return frames
}
