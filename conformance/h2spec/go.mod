// h2spec for the conformance suite, with its dependencies pinned here (its
// repository has no go.mod of its own, so `go install ...@v2.2.1` would
// take whatever versions are newest). .ci/tools.sh installs it from this
// module: go -C conformance/h2spec install tool.
module github.com/sluice-proxy/sluice/conformance/h2spec

go 1.26.0

// h2spec predates modules, so `go install h2spec@version` builds it with
// go1.16's GODEBUG defaults; keep those, so the pinned build behaves as
// the one the report was made with.
godebug default=go1.16

tool github.com/summerwind/h2spec/cmd/h2spec

require (
	github.com/fatih/color v1.19.0 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/spf13/cobra v1.10.2 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	github.com/summerwind/h2spec v2.2.1+incompatible // indirect
	golang.org/x/net v0.63.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/text v0.44.0 // indirect
)
