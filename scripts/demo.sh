#!/usr/bin/env bash
# Set up if needed, then run the demo; arguments go to the demo.
#
#   scripts/demo.sh                  # headless stream-core demo, 5 s
#   scripts/demo.sh --seconds 3 --readers 4
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
VENV=$(realpath -m "${VENV:-$ROOT/.venv}")
export VENV
"$ROOT/scripts/setup.sh"
cd "$ROOT"

# qudi keeps status variables, logs and data below $HOME; the demo gets its own (git-ignored).
HOME=${QUDI_HOME:-$ROOT/.home}
export HOME
mkdir -p "$HOME"

# To start qudi with a GUI config instead (it needs a display, and its Jupyter kernelspec, or
# qudi's manager shows an error popup and never quits), replace the last line with:
#   "$VENV/bin/python" -m qudi.core.qudikernel install >/dev/null
#   exec "$VENV/bin/python" -m qudi.core -c "$ROOT/cfg/<demo>.cfg" "$@"   # -c: absolute path
exec "$VENV/bin/python" -m qudi.util.instream.demo "$@"
