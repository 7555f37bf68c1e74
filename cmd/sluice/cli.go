package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// command is one of sluice's commands or sub-commands. The table below
// drives dispatch, `sluice --help` and each command's --help, so a command
// cannot exist without being listed.
type command struct {
	path     string // "run", "ca init"
	synopsis string // its line in `sluice --help`
	args     string // what follows `sluice PATH` in its usage line
	about    string // a paragraph for its --help; may be empty
	// flags returns a fresh FlagSet with the flags it parses (nil: none),
	// so its --help lists exactly what it accepts.
	flags func() *flag.FlagSet
	run   func(args []string, stdout, stderr io.Writer) int
}

var commands []command

func init() {
	// Assigned in init: the help entries refer back to the table.
	commands = []command{
		{path: "run", synopsis: "serve a config; SIGTERM or SIGINT drains and stops",
			args: "--config FILE [--mode edge|sidecar] [--log-level info]",
			about: `SIGTERM or SIGINT drains in-flight requests (up to server.drain_timeout)
and exits; a second signal stops at once. SIGHUP, POST /config/reload on
the admin listener, or a change to the file reloads the config.`,
			flags: func() *flag.FlagSet { fs, _ := commonFlagSet("run"); return fs },
			run:   func(a []string, _, stderr io.Writer) int { return cmdRun(a, stderr) }},
		{path: "validate", synopsis: "check a config; exit 1 with file:line: key: problem",
			args:  "--config FILE [--mode edge|sidecar]",
			flags: func() *flag.FlagSet { fs, _ := commonFlagSet("validate"); return fs },
			run:   cmdValidate},
		{path: "ca init", synopsis: "create a mesh trust root (ca.crt, ca.key)",
			args:  "--dir DIR --trust-domain DOMAIN [--ttl 87600h]",
			flags: func() *flag.FlagSet { fs, _ := caInitFlags(); return fs },
			run:   cmdCAInit},
		{path: "ca issue", synopsis: "issue a workload certificate for a SPIFFE ID",
			args:  "--dir DIR --id spiffe://DOMAIN/ns/NS/sa/NAME --out PREFIX [--ttl 24h]",
			flags: func() *flag.FlagSet { fs, _ := caIssueFlags(); return fs },
			run:   cmdCAIssue},
		{path: "plugin init", synopsis: "scaffold a filter project (Go or Rust)",
			args:  "NAME [--lang go|rust] [--dir DIR] [--module PATH] [--sdk DIR]",
			about: pluginInitAbout,
			flags: func() *flag.FlagSet { fs, _ := pluginInitFlags(); return fs },
			run:   cmdPluginInit},
		{path: "version", synopsis: "print the version of sluice, Go and wazero",
			run: cmdVersion},
		{path: "help", synopsis: "show this help, or a command's: sluice help COMMAND",
			args: "[COMMAND]", run: cmdHelp},
	}
}

func mainUsage() string {
	var b strings.Builder
	b.WriteString("sluice: a proxy whose policy runs as proxy-wasm filters\n\nUsage:\n  sluice COMMAND [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-12s %s\n", c.path, c.synopsis)
	}
	b.WriteString("\n`sluice COMMAND --help` shows a command's flags.\n")
	return b.String()
}

// groupUsage lists the sub-commands under prefix ("ca", "plugin").
func groupUsage(prefix string) string {
	var b strings.Builder
	b.WriteString("Usage:\n")
	for _, c := range commands {
		if strings.HasPrefix(c.path, prefix+" ") {
			fmt.Fprintf(&b, "  sluice %s %s\n", c.path, c.args)
		}
	}
	b.WriteString("\nCommands:\n")
	for _, c := range commands {
		if strings.HasPrefix(c.path, prefix+" ") {
			fmt.Fprintf(&b, "  %-12s %s\n", c.path, c.synopsis)
		}
	}
	fmt.Fprintf(&b, "\n`sluice %s COMMAND --help` shows a command's flags.\n", prefix)
	return b.String()
}

func (c *command) usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage:\n  sluice %s %s\n\n%s.\n", c.path, c.args, upperFirst(c.synopsis))
	if c.about != "" {
		fmt.Fprintf(&b, "\n%s\n", c.about)
	}
	if c.flags != nil {
		b.WriteString("\nFlags:\n")
		c.flags().VisitAll(func(f *flag.Flag) {
			name, text := flag.UnquoteUsage(f)
			left := "--" + f.Name
			if name != "" {
				left += " " + strings.ToUpper(name)
			}
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				text += " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(&b, "  %-22s %s\n", left, text)
		})
	}
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// isGroup reports whether some command's path starts with "name ".
func isGroup(name string) bool {
	for _, c := range commands {
		if strings.HasPrefix(c.path, name+" ") {
			return true
		}
	}
	return false
}

// lookup finds the command args name: "ca issue ..." is the two-word
// command, "run ..." the one-word one. rest is what follows the name.
func lookup(args []string) (c *command, rest []string) {
	for i := range commands {
		words := strings.Fields(commands[i].path)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == commands[i].path {
			return &commands[i], args[len(words):]
		}
	}
	return nil, nil
}

// wantsHelp reports whether args ask for help: -h, -help or --help before
// any "--". Checked before a command parses its flags, so every command
// answers it the same way (usage on stdout, exit 0), with or without
// other flags or a missing required one.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage())
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, mainUsage())
		return 0
	case "--version", "-v":
		return cmdVersion(nil, stdout, stderr)
	}
	c, rest := lookup(args)
	if c == nil {
		if isGroup(args[0]) {
			// "sluice ca", "sluice ca --help", "sluice ca bogus".
			switch {
			case len(args) > 1 && wantsHelp(args[1:2]), len(args) > 1 && args[1] == "help":
				fmt.Fprint(stdout, groupUsage(args[0]))
				return 0
			case len(args) == 1:
				fmt.Fprint(stderr, groupUsage(args[0]))
			default:
				fmt.Fprintf(stderr, "sluice %s: unknown command %q\n\n%s", args[0], args[1], groupUsage(args[0]))
			}
			return 2
		}
		fmt.Fprintf(stderr, "sluice: unknown command %q\n\n%s", args[0], mainUsage())
		return 2
	}
	if wantsHelp(rest) {
		fmt.Fprint(stdout, c.usage())
		return 0
	}
	return c.run(rest, stdout, stderr)
}

// cmdHelp is `sluice help [COMMAND]`.
func cmdHelp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, mainUsage())
		return 0
	}
	if c, rest := lookup(args); c != nil && len(rest) == 0 {
		fmt.Fprint(stdout, c.usage())
		return 0
	}
	if len(args) == 1 && isGroup(args[0]) {
		fmt.Fprint(stdout, groupUsage(args[0]))
		return 0
	}
	fmt.Fprintf(stderr, "sluice help: unknown command %q\n\n%s", strings.Join(args, " "), mainUsage())
	return 2
}

// cmdVersion prints sluice's version and what it was built with: the Go
// release and the wazero module (the Wasm runtime), from the build info.
func cmdVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "sluice version: takes no arguments\n")
		return 2
	}
	v, wazero := version, "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		// `go install ...@vX` records the module's version; a checkout
		// build says "(devel)" and keeps the -ldflags one.
		if mv := bi.Main.Version; mv != "" && mv != "(devel)" && v == defaultVersion {
			v = mv
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				wazero = d.Version
				if d.Replace != nil {
					wazero += " => " + d.Replace.Path + " " + d.Replace.Version
				}
			}
		}
	}
	fmt.Fprintf(stdout, "sluice %s\n%s %s/%s\nwazero %s\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH, wazero)
	return 0
}
