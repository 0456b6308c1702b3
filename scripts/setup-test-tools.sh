#!/usr/bin/env bash
# Installs what the tests need beyond Rust, into folders the project owns:
#   tools/node_modules   buf (npm @bufbuild/buf), which lints the protos
#   $TOOLS_DIR/venv      Python with grpcio-tools, for the SDK proof test
# Prints `export LATCH_TEST_PYTHON=...` for the caller to eval.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS_DIR=${LATCH_TOOLS_DIR:-${CARGO_TARGET_DIR:-target}/test-tools}
mkdir -p "$TOOLS_DIR"

if [ ! -x tools/node_modules/.bin/buf ]; then
  (cd tools && npm ci --no-audit --no-fund --loglevel=error) >&2
fi

venv="$TOOLS_DIR/venv"
requirements=tests/sdk/python/requirements.txt
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$stamp"; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$stamp"
fi
echo "export LATCH_TEST_PYTHON=$(cd "$venv/bin" && pwd)/python"
