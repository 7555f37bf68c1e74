package proxy

import (
	"sync/atomic"
	"testing"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/upstream"
)

// newTestConnectionManager returns the connection manager of listener in
// the config cfgText, whose plugins facs serve, with access as its access
// log (nil: none); its clusters close when the test ends.
func newTestConnectionManager(t *testing.T, cfgText, listener string, facs map[string]filter.Factory, access *zap.Logger) *ConnectionManager {
	t.Helper()
	snap, _ := newTestSnapshot(t, cfgText, facs)
	var ptr atomic.Pointer[Snapshot]
	ptr.Store(snap)
	return NewConnectionManager(listener, &ptr, new(atomic.Uint64), zap.NewNop(), access)
}

// newTestSnapshot returns the snapshot of the config cfgText, whose
// plugins facs serve, and its clusters, which close when the test ends.
func newTestSnapshot(t *testing.T, cfgText string, facs map[string]filter.Factory) (*Snapshot, *upstream.Manager) {
	t.Helper()
	cfg, err := config.Parse("t.toml", []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	reg := stats.NewRegistry()
	up, err := upstream.NewManager(cfg.Clusters, reg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Close)
	snap, err := NewSnapshot(cfg, up, facs, reg)
	if err != nil {
		t.Fatal(err)
	}
	return snap, up
}
