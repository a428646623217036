#!/usr/bin/env bash
# The supported ansible-core releases, each as the controller of the same tests: the rollout
# strategy's, the rollout filters' and one deploy to one loopback edge (`make test-cores`).
# The dev set's ansible-core (constraints.txt) runs them as in every tier; each release of
# constraints-cores.txt runs them from the controller image (scripts/controller.sh), while
# pytest, the fleet and the edges stay on this machine. Prints a table of the rows at the end
# and exits non-zero when a row failed.
#
#   scripts/test_cores.sh                 every release
#   scripts/test_cores.sh 2.21            that release alone (2.19: the dev set's)
#   CORES_TESTS='tests/unit/plugins/test_rollout_strategy.py' scripts/test_cores.sh 2.21
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
cd "$REPO"
PY="${PY:-$REPO/.venv/bin/python}"
REPORTS="${REPORTS:-build/test-reports}"
TESTS=(${CORES_TESTS:-tests/unit/plugins/test_rollout_strategy.py tests/unit/plugins/test_rollout_filters.py
  tests/integration/deploy/test_deploy_one_edge.py::test_fresh_deploy_then_the_same_deploy_changes_nothing})

dev=$("$PY" -c 'import ansible.release as r; print(r.__version__)')
dev_minor=$(echo "$dev" | cut -d. -f1-2)
image_minors=$(sed -nE 's/^ansible-core==([0-9]+\.[0-9]+)\.[0-9]+$/\1/p' constraints-cores.txt)
if [ $# -gt 0 ]; then rows=("$@"); else read -r -a rows <<<"$dev_minor $(echo $image_minors)"; fi

need_image=false
for m in "${rows[@]}"; do [ "$m" = "$dev_minor" ] || need_image=true; done
image_s=0
if $need_image; then
  t0=$(date +%s)
  image=$(bash scripts/controller_image.sh) || { echo "test-cores: the controller image did not build" >&2; exit 1; }
  export EDGEINFER_CONTROLLER_IMAGE="$image"
  image_s=$(($(date +%s) - t0))
fi

mkdir -p "$REPORTS"
table=()
failed=0
for m in "${rows[@]}"; do
  if [ "$m" = "$dev_minor" ]; then
    controller="" local_python="" where="dev set (.venv)"
  else
    grep -qE "^ansible-core==$m\.[0-9]+$" constraints-cores.txt || { echo "test-cores: $m is not in constraints-cores.txt" >&2; exit 2; }
    controller="scripts/controller.sh $m" local_python=/usr/local/bin/host-python where="controller image"
  fi
  # The release that actually runs, as the controller reports it.
  version=$(EDGEINFER_CONTROLLER="$controller" "$PY" -c \
    'from testbed.ansible_run import ansible_command; import subprocess; print(subprocess.run(ansible_command("ansible-playbook") + ["--version"], capture_output=True, text=True).stdout.split("core ")[1].split("]")[0])' \
    2>/dev/null || echo "?")
  echo "== ansible-core $version ($where)"
  t0=$(date +%s)
  EDGEINFER_CONTROLLER="$controller" EDGEINFER_LOCAL_PYTHON="$local_python" EDGEINFER_HOST_PYTHON="$PY" \
    "$PY" -m pytest -ra --basetemp="build/pytest-cores-$m" --junitxml="$REPORTS/cores-$m.xml" "${TESTS[@]}"
  rc=$?
  s=$(($(date +%s) - t0))
  counts=$("$PY" - "$REPORTS/cores-$m.xml" <<'PYEOF'
import sys
import xml.etree.ElementTree as ET

try:
    suite = ET.parse(sys.argv[1]).getroot().find("testsuite")
    n, f, e, sk = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    print(f"{n - f - e - sk} passed, {f + e} failed, {sk} skipped")
    sys.exit(3 if sk else 0)
except (OSError, ET.ParseError, AttributeError):
    print("no report")
PYEOF
)
  skipped=$?
  # A row that skipped a test (no Docker engine, no base image) has not shown that release works.
  if [ "$rc" -ne 0 ]; then result="FAILED (exit $rc)"; failed=1
  elif [ "$skipped" -ne 0 ]; then result="FAILED (a test skipped)"; failed=1
  else result=ok; fi
  table+=("$(printf '%-8s %-10s %-18s %-32s %6d  %s' "$m" "$version" "$where" "$counts" "$s" "$result")")
done

printf '\n%-8s %-10s %-18s %-32s %6s  %s\n' "core" "version" "controller" "tests" "s" "result"
for row in "${table[@]}"; do echo "$row"; done
$need_image && echo "(controller image: ${image_s} s, $EDGEINFER_CONTROLLER_IMAGE)"
exit "$failed"
