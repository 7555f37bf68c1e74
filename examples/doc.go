// Package examples holds the tests of the example configs as a user runs
// them: `make run-kong` and `make run-istio` (run.sh) start each with what
// it needs, and answer as the example's comments say.
package examples
