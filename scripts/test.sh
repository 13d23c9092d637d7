#!/usr/bin/env bash
# Set up if needed, lint, then run the tests; arguments go to pytest.
#
#   scripts/test.sh                  # ruff check, ruff format --check, whole test suite
#   scripts/test.sh -k ring -x       # lint, then only the tests matching 'ring'
#
# Exit status: pytest's, or 1 if pytest passed but ruff did not.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
VENV=$(realpath -m "${VENV:-$ROOT/.venv}")
export VENV
"$ROOT/scripts/setup.sh"   # with the real HOME, so pip keeps using its cache
cd "$ROOT"

# qudi writes status variables, logs and data below $HOME: keep the user's home out of it.
HOME=$(mktemp -d "${TMPDIR:-/tmp}/qudi-instream-home.XXXXXX")
export HOME
trap 'rm -rf "$HOME"' EXIT
unset XDG_CONFIG_HOME XDG_DATA_HOME XDG_CACHE_HOME XDG_STATE_HOME
export QT_QPA_PLATFORM=offscreen

# Git keeps no empty folders: lint only the ones that exist in this checkout.
lint_paths=()
for dir in src tests benchmarks scripts; do
    [ -d "$dir" ] && lint_paths+=("$dir")
done

lint_failed=0
"$VENV/bin/ruff" check "${lint_paths[@]}" || lint_failed=1
"$VENV/bin/ruff" format --check "${lint_paths[@]}" || lint_failed=1
if [ "$lint_failed" -ne 0 ]; then
    echo "test: ruff found problems (above); running the tests anyway, this run will fail" >&2
fi

# pytest runs last so that its summary line closes the output.
status=0
"$VENV/bin/pytest" "$@" || status=$?
if [ "$status" -eq 0 ] && [ "$lint_failed" -ne 0 ]; then
    status=1
fi
exit "$status"
