// Command sluice is the proxy: `sluice run`, `sluice validate`, `sluice
// ca`, `sluice plugin`, `sluice version` (cli.go lists them). Everything it
// does lives in runtime/; this file only reads flags, sets up logging and
// handles signals.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/server"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = defaultVersion

const defaultVersion = "0.1.0-dev"

func main() {
	// Go's heap profiler is off until the admin API turns it on (POST
	// /heapprofiler?enable=y, as Envoy's): left on, its table of sampled
	// call paths grows for the life of the process.
	runtime.MemProfileRate = 0
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type commonFlags struct {
	config, mode, logLevel string
}

// commonFlagSet is the flags run and validate share.
func commonFlagSet(name string) (*flag.FlagSet, *commonFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var f commonFlags
	fs.StringVar(&f.config, "config", "", "the config `file` (TOML); required")
	fs.StringVar(&f.mode, "mode", "", "edge or sidecar; overrides the file's `mode`")
	fs.StringVar(&f.logLevel, "log-level", "info", "the log `level`: debug, info, warn or error")
	return fs, &f
}

func parseFlags(name string, args []string, stderr io.Writer) (*commonFlags, bool) {
	fs, f := commonFlagSet(name)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, "(sluice %s --help shows its flags)\n", name) }
	if err := fs.Parse(args); err != nil {
		return nil, false
	}
	if f.config == "" {
		fmt.Fprintf(stderr, "sluice %s: --config FILE is required\n", name)
		return nil, false
	}
	if f.mode != "" && f.mode != "edge" && f.mode != "sidecar" {
		fmt.Fprintf(stderr, "sluice %s: --mode must be edge or sidecar, not %q\n", name, f.mode)
		return nil, false
	}
	return f, true
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	f, ok := parseFlags("validate", args, stderr)
	if !ok {
		return 2
	}
	cfg, err := config.LoadWithMode(f.config, f.mode)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// Each plugin loads as `run` would load it (module checks, compile,
	// vm_start, configure), in a dry run with no traffic: what validate
	// passes, run does not refuse.
	if err := server.CheckPlugins(context.Background(), cfg); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (mode %s, %s, %s, %s, %s)\n", f.config, cfg.Mode,
		count(len(cfg.Listeners), "listener"), count(len(cfg.Routes), "route"),
		count(len(cfg.Clusters), "cluster"), count(len(cfg.Plugins), "plugin"))
	return 0
}

// count says "1 route", "2 routes", "0 routes".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func cmdRun(args []string, stderr io.Writer) int {
	f, ok := parseFlags("run", args, stderr)
	if !ok {
		return 2
	}
	log, err := newLogger(f.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "sluice run: %v\n", err)
		return 2
	}
	defer log.Sync()

	start := time.Now()
	srv, err := server.New(server.Options{ConfigPath: f.config, Mode: f.mode, Log: log, Stderr: os.Stderr})
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			// file:line: key: problem, as validate prints it.
			fmt.Fprintln(stderr, err)
		} else {
			log.Error("cannot start: "+err.Error(), zap.Error(err))
		}
		return 1
	}
	if err := srv.Start(); err != nil {
		log.Error("cannot start: "+err.Error(), zap.Error(err))
		return 1
	}
	log.Info(fmt.Sprintf("ready in %s", time.Since(start).Round(time.Millisecond)),
		zap.String("version", version), zap.String("config", f.config), zap.String("admin", srv.AdminAddr()))

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	// Last of start-up: signal.Notify's first call starts the signal
	// watcher.
	releaseBinaryPages()
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			if err := srv.Reload(); err == nil {
				srv.ReloadPlugins()
			}
			continue
		}
		log.Info("draining", zap.String("signal", sig.String()))
		go func() {
			// A second signal while draining stops at once.
			<-sigs
			os.Exit(1)
		}()
		if err := srv.Shutdown(context.Background()); err != nil {
			log.Warn("drain ended with requests still in flight", zap.Error(err))
		}
		log.Info("stopped")
		return 0
	}
	return 0
}

func newLogger(level string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	// zap's production config adds a stack trace to every error line; an
	// error here is an expected one (a refused plugin, a busy port, an
	// unreachable upstream) whose message says what to fix, and a Go
	// stack only buries it. Stacks stay for what is a bug: DPanic and up.
	cfg.DisableStacktrace = true
	return cfg.Build(zap.AddStacktrace(zapcore.DPanicLevel))
}
