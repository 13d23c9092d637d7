#!/usr/bin/env bash
# Set up if needed, then run the demo.
#
#   scripts/demo.sh                  # qudi with cfg/instream_dummy.cfg: two live time-series
#                                    # windows on one dummy stream (needs a display)
#   scripts/demo.sh --headless       # no display: the stream-core demo in the terminal, 5 s
#   scripts/demo.sh --headless --seconds 3 --readers 4
#
# Without a display (no DISPLAY or WAYLAND_DISPLAY) the headless demo runs.
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

headless=0
if [ "${1:-}" = "--headless" ]; then
    headless=1
    shift
elif [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    echo "demo: no display found, so running the headless stream demo instead of qudi's windows"
    headless=1
fi
if [ "$headless" -eq 1 ]; then
    exec "$VENV/bin/python" -m qudi.util.instream.demo "$@"
fi

# qudi's manager needs its Jupyter kernelspec, or it shows an error popup and never quits.
"$VENV/bin/python" -m qudi.core.qudikernel install >/dev/null
exec "$VENV/bin/python" -m qudi.core -c "$ROOT/cfg/instream_dummy.cfg"  # -c: absolute path
