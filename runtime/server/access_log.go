package server

import (
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// accessLogBuffer is how many bytes of lines wait before a write: a few
// hundred requests' worth, as Envoy's and nginx's buffered logs keep.
const accessLogBuffer = 256 << 10

// accessLog is the per-request log: JSON lines, buffered and written out
// every [access_log] flush_interval, when the buffer fills, and on
// shutdown, so a request costs no write(2) of its own.
type accessLog struct {
	log  *zap.Logger
	buf  *zapcore.BufferedWriteSyncer
	file *os.File // nil for stderr
}

// newAccessLog opens the access log cfg describes; stderr is where lines
// go without a path. nil (and no error) when it is disabled.
func newAccessLog(cfg config.AccessLog, stderr io.Writer) (*accessLog, error) {
	if cfg.Disabled {
		return nil, nil
	}
	a := &accessLog{}
	out := zapcore.AddSync(stderr)
	if cfg.Path != "" {
		f, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("access_log.path: %w", err)
		}
		a.file, out = f, f
	}
	a.buf = &zapcore.BufferedWriteSyncer{WS: out, Size: accessLogBuffer, FlushInterval: cfg.FlushInterval.D()}
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{
		// No level, caller or stack: every line is a request; its own
		// start_time says when (the time it was written adds nothing).
		NameKey:        "logger",
		MessageKey:     "msg",
		LineEnding:     zapcore.DefaultLineEnding,
		EncodeTime:     zapcore.RFC3339NanoTimeEncoder,
		EncodeDuration: zapcore.MillisDurationEncoder,
	})
	a.log = zap.New(zapcore.NewCore(enc, a.buf, zapcore.InfoLevel)).Named("access")
	return a, nil
}

// close writes out what is buffered and stops the flush timer.
func (a *accessLog) close() {
	if a == nil {
		return
	}
	a.buf.Stop()
	if a.file != nil {
		a.file.Close()
	}
}
