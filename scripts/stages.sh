#!/usr/bin/env bash
# Runs make targets in turn, timing each, and prints every stage's wall time at the end
# (also when a stage fails), so a CI log shows which stage grew.
#
#   scripts/stages.sh setup speed lint collection pytest molecule
set -uo pipefail

names=()
times=()
results=()
table() {
  printf '\n%-20s %9s  %s\n' "stage" "wall (s)" "result"
  local total=0
  for i in "${!names[@]}"; do
    printf '%-20s %9d  %s\n' "${names[$i]}" "${times[$i]}" "${results[$i]}"
    total=$((total + times[i]))
  done
  printf '%-20s %9d  (%dm%02ds)\n' "total" "$total" $((total / 60)) $((total % 60))
}

for stage in "$@"; do
  echo "== make $stage"
  t0=$(date +%s)
  make --no-print-directory "$stage"
  rc=$?
  names+=("$stage")
  times+=($(($(date +%s) - t0)))
  if [ "$rc" -ne 0 ]; then
    results+=("FAILED (exit $rc)")
    table
    exit "$rc"
  fi
  results+=("ok")
done
table
