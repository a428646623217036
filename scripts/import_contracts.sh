#!/usr/bin/env bash
# The import directions of .importlinter, checked by import-linter (make lint).
#
# The collection's plugins import each other as ansible_collections.edgeinfer.deploy.plugins.*,
# and collections/ansible_collections/edgeinfer/deploy links back to this repository, a loop a
# walk of the packages would follow. So the plugins are copied, links resolved as the built
# collection has them, into build/imports/, which comes first on the path.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
dest=build/imports/ansible_collections/edgeinfer/deploy
rm -rf build/imports
mkdir -p "$dest"
cp -rL plugins "$dest/plugins"
find "$dest" -name __pycache__ -prune -exec rm -rf {} +
PYTHONPATH="$PWD/build/imports:$PWD" exec "$BIN/lint-imports" --no-cache .importlinter
