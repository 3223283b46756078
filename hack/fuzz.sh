#!/usr/bin/env bash
# fuzz.sh runs every fuzz target in the module for FUZZTIME (default 20s)
# each. Failing inputs land in the package's testdata/fuzz and then run as
# ordinary tests in `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-20s}
status=0
while IFS= read -r line; do
	file=${line%%:*}
	target=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' <<<"${line#*:}")
	pkg=./$(dirname "$file")
	echo "fuzz: $pkg $target ($fuzztime)"
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s "$pkg" || status=1
done < <(git grep -n -E '^func Fuzz[A-Za-z0-9_]*\(' -- '*_test.go' | sed -E 's/^([^:]*):[0-9]+:/\1:/')
exit $status
