package proxywasm

import (
	"testing"

	"github.com/sluice-proxy/sluice/sdk/internal/defaults"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// mixedPlugin makes testStream contexts, or plain defaults when other is set.
type mixedPlugin struct {
	testPlugin
	other bool
}

func (p *mixedPlugin) NewHttpContext(id uint32) types.HttpContext {
	if p.other {
		return &types.DefaultHttpContext{}
	}
	return p.testPlugin.NewHttpContext(id)
}

// stream runs one HTTP stream's callbacks through the dispatcher.
func stream(s *vmState, id uint32) {
	s.onContextCreate(id, 1)
	s.onRequestHeaders(id, 0, false)
	s.onRequestBody(id, 0, true)
	s.onResponseHeaders(id, 0, false)
	s.onResponseBody(id, 0, true)
	s.onLog(id)
	s.onDone(id)
	s.onDelete(id)
}

func TestSkipDefaultCallbacks(t *testing.T) {
	var told []uint32
	oldTell, oldSkip := tellSkip, skipDefaults
	tellSkip = func(m uint32) { told = append(told, m) }
	t.Cleanup(func() { tellSkip, skipDefaults = oldTell, oldSkip })

	for _, optIn := range []bool{false, true} {
		skipDefaults, told = optIn, nil
		s := withState(t)
		p := &mixedPlugin{}
		s.vm = &registry{byRootID: map[string]func(uint32) types.PluginContext{"": func(uint32) types.PluginContext { return p }},
			rootID: func() (string, error) { return "", nil }}
		s.onContextCreate(1, 0)
		stream(s, 2)
		stream(s, 3)
		if !optIn {
			if len(told) != 0 {
				t.Fatalf("without the opt-in the host was told %v", told)
			}
			continue
		}
		// testStream overrides request headers and stream done; request
		// headers are never skipped.
		want := defaults.RequestBody | defaults.ResponseHeaders | defaults.ResponseBody
		if len(told) != 1 || told[0] != want {
			t.Fatalf("told %b, want one mask %b", told, want)
		}
		// A context of another type restores every callback.
		p.other = true
		stream(s, 4)
		if told[len(told)-1] != 0 || !s.roots[1].mixed {
			t.Fatalf("after a second type: told %b, mixed %v", told, s.roots[1].mixed)
		}
		n := len(told)
		stream(s, 5)
		if len(told) != n {
			t.Fatalf("learning went on after a second type: %b", told)
		}
	}
}
