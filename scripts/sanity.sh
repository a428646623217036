#!/usr/bin/env bash
# ansible-test sanity on the collection's Ansible content, with no ignore file.
#
#   scripts/sanity.sh                      every test but the slow ones (make lint)
#   scripts/sanity.sh pylint import        named tests only (make sanity TESTS='pylint import')
#   SANITY_TESTS=all scripts/sanity.sh     every sanity test (make lint-full)
#
# ansible-test needs the collection at .../ansible_collections/edgeinfer/deploy and reads
# the file list from git when a git repository holds the tree, so it would see nothing in
# build/ (ignored by this repository) and the symlinked collections/ path loops back into
# the repository. So the Ansible content is copied (symlinks resolved, as the built
# collection has them) into build/sanity/, which gets a git repository of its own.
#
# The Python packages beside the collection (sidecar/, model_tools/, edgeinfer_contract/,
# edgeinfer_load/, edgeinfer_validate/, bench/, tests/, scripts/) are linted by ruff;
# edgeinfer_contract and edgeinfer_load are also part of the content here, as
# plugins/module_utils/_contract/ and _load/ (a link to each of their files).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON_VERSION=3.11
BIN=${BIN:-.venv/bin}
# The collection's Ansible content: what ansible-test's tests are about.
CONTENT=(galaxy.yml README.md meta plugins roles playbooks deploy.yml rollback.yml changelogs tests/config.yml extensions)
# Slow on this bench (2 cores, warm): pylint about 45 s, ansible-doc about 20 s; the others
# take 15 s together. `make lint` (and so CI) runs pylint and skips ansible-doc, which
# tests/integration/collection renders for every plugin in text mode anyway; `make lint-full` runs both.
SLOW=(ansible-doc)
args=()
if [ "$#" -gt 0 ]; then
  for t in "$@"; do args+=(--test "$t"); done
elif [ "${SANITY_TESTS:-}" != all ]; then
  for t in "${SLOW[@]}"; do args+=(--skip-test "$t"); done
fi

dest=build/sanity/ansible_collections/edgeinfer/deploy
rm -rf build/sanity
mkdir -p "$dest"
git ls-files -z --cached --others --exclude-standard -- "${CONTENT[@]}" \
  | tar --null --files-from=- --dereference --ignore-failed-read -cf - 2>/dev/null \
  | tar -xf - -C "$dest"
git -C "$dest" init -q

# ansible-test bootstraps pip in each test's virtual environment with a get-pip.py that it
# downloads from a host this bench cannot reach; its stand-in installs the same pinned pip
# from the package index (scripts/ansible_test_get_pip.py).
pip_version=$("$BIN/python" -c 'from ansible_test._internal.python_requirements import get_venv_packages as g
from ansible_test._internal.host_configs import NativePythonConfig as P
print(g(P(version="'$PYTHON_VERSION'"))["pip"])')
cache=~/.ansible/test/cache/get_pip_${pip_version//./_}.py
if ! cmp -s scripts/ansible_test_get_pip.py "$cache"; then
  mkdir -p "$(dirname "$cache")"
  cp scripts/ansible_test_get_pip.py "$cache"
fi

cd "$dest"
exec "$OLDPWD/$BIN/ansible-test" sanity --python "$PYTHON_VERSION" --color no "${args[@]}"
