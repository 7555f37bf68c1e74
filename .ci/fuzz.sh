#!/usr/bin/env bash
# make fuzz: every Go fuzz target in the core packages, one after another,
# each for FUZZTIME (default 60s). `make test` runs only their committed
# seed corpora (plain `go test`); this explores further. A crasher is
# written to the package's testdata/fuzz/NAME/ by Go: commit it with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-60s}
failed=()
while IFS=: read -r file name; do
  pkg=./$(dirname "$file")
  echo "fuzz: $pkg $name ($fuzztime)"
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"; then
    failed+=("$pkg $name")
  fi
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' runtime hostabi cmd plugins \
           | sed 's/:func /:/' | sort -u)
if ((${#failed[@]})); then
  printf 'fuzz: found a failure in %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "fuzz: every target ran $fuzztime without a failure"
