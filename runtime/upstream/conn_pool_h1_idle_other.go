//go:build !unix

package upstream

import "net"

// peekState is empty where a non-blocking peek is not available: idle
// connections are then checked only when their response ends.
type peekState struct{}

func (p *idlePeek) initPeek(net.Conn) {}

func (p *idlePeek) quiet() bool { return true }

func (p *idlePeek) canSendQuiet() bool { return false }

func (p *idlePeek) sendQuiet([]byte, bool) (int, error) { panic("unreachable") }
