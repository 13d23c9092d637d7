#!/usr/bin/env bash
# Idempotent setup on a Debian/Ubuntu machine: system packages for headless Qt, `localhost`,
# and a virtual environment with this package installed in editable mode with its test extras
# (and qudi-iqo-modules 1.0.0, whose modules tests/iqo wires to ours).
#
#   scripts/setup.sh                 # venv in <repo>/.venv, interpreter `python3`
#   PYTHON=python3.12 VENV=/tmp/v scripts/setup.sh
#
# A second run installs nothing unless pyproject.toml changed since the last successful install.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
VENV=$(realpath -m "${VENV:-$ROOT/.venv}")   # a relative VENV is taken from the caller's cwd
PYTHON=${PYTHON:-python3}
cd "$ROOT"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Run a noisy command with its output in a log; show the log's tail only if it fails.
quietly() {
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/qudi-instream-setup.XXXXXX")
    if "$@" >"$log" 2>&1; then
        rm -f "$log"
    else
        local rc=$?
        printf 'setup: error: "%s" failed (exit %d); last lines of %s:\n' "$*" "$rc" "$log" >&2
        tail -n 40 "$log" >&2
        exit "$rc"
    fi
}

# --- Python -----------------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 ||
    die "'$PYTHON' not found: install Python >= 3.10 or point PYTHON at one (PYTHON=python3.12 $0)"
PY_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "'$PYTHON' is Python $PY_VERSION; qudi-instream needs Python >= 3.10 (set PYTHON=...)"

venv_usable() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' 2>/dev/null
}

# --- Debian packages --------------------------------------------------------------------------
# Qt offscreen needs the first line; Xvfb-based GUI tests the second and third; multi-host
# tests (network namespaces joined by veth links, tc, nftables for packet loss) the last.
APT_PACKAGES=(
    libglib2.0-0 libgl1 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3
    xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0
    libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0
    iproute2 nftables
)

deb_installed() {
    # Newer releases renamed some libraries with a t64 suffix (libglib2.0-0t64 provides libglib2.0-0).
    local name
    for name in "$1" "${1}t64"; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$name" 2>/dev/null)" = installed ] && return 0
    done
    return 1
}

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for pkg in "${APT_PACKAGES[@]}"; do
        deb_installed "$pkg" || missing+=("$pkg")
    done
    # Debian and Ubuntu ship `venv`'s ensurepip separately (python3-venv / python3.X-venv).
    if ! venv_usable && ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        missing+=(python3-venv)
        # A system Python other than the default one needs its own python3.X-venv.
        if [ "$("$PYTHON" -c 'import sys; print(sys.base_prefix)')" = /usr ]; then
            missing+=("python$PY_VERSION-venv")
        fi
    fi
else
    say "no dpkg-query: not a Debian/Ubuntu system, skipping the system package check"
fi

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        printf 'setup: error: missing Debian packages: %s\n' "${missing[*]}" >&2
        printf 'setup: install them as root, then run %s again:\n' "$0" >&2
        printf '  apt-get update && apt-get install -y --no-install-recommends %s\n' "${missing[*]}" >&2
        exit 1
    fi
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    quietly "${SUDO[@]}" apt-get update
    quietly "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

# --- localhost --------------------------------------------------------------------------------
# qudi's rpyc servers bind to `localhost`; minimal images may have no /etc/hosts entry for it.
if ! getent hosts localhost >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        say "adding '127.0.0.1 localhost' to /etc/hosts"
        printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >>/etc/hosts
    else
        printf "setup: warning: 'localhost' does not resolve; qudi's servers need it. As root:\n" >&2
        printf "  echo '127.0.0.1 localhost' >> /etc/hosts\n" >&2
    fi
fi

# --- virtual environment ----------------------------------------------------------------------
if ! venv_usable; then
    # Never delete a folder we did not just create: its Python may be gone, or only unreadable.
    [ -e "$VENV" ] && die "$VENV exists but its bin/python does not run; remove it or set VENV"
    say "creating virtual environment $VENV (Python $PY_VERSION)"
    quietly "$PYTHON" -m venv "$VENV"
fi

# qudi-iqo-modules, whose real modules tests/iqo wires to ours. Installed with --no-deps: it pins
# qudi-core 1.7.0 and other exact versions that no resolver can combine with ours (its dummy,
# logic and GUI run under qudi-core 1.8 unchanged).
IQO_MODULES="qudi-iqo-modules==1.0.0"

# The install is redone when pyproject.toml, the repository's place, the venv's Python or the
# qudi-iqo-modules pin change.
STAMP="$VENV/.qudi-instream-installed"
want=$(printf '%s %s %s %s\n' "$(sha256sum pyproject.toml | cut -d' ' -f1)" "$ROOT" \
    "$("$VENV/bin/python" -c 'import sys; print(sys.version)')" "$IQO_MODULES")
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    rm -f "$STAMP"
    say "installing qudi-instream and its test tools into $VENV (a few minutes into a new venv)"
    start=$SECONDS
    quietly "$VENV/bin/python" -m pip install --upgrade pip
    quietly "$VENV/bin/python" -m pip install --progress-bar off -e "${ROOT}[test]"
    quietly "$VENV/bin/python" -m pip install --progress-bar off --no-deps "$IQO_MODULES"
    # Its wheel also carries a copy of qudi-core's qudi/util/fit_models/gaussian.py, which
    # overwrites qudi-core's own (tests/iqo/test_install.py checks): put qudi-core's back.
    core=$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("qudi-core"))')
    quietly "$VENV/bin/python" -m pip install --progress-bar off --no-deps --force-reinstall \
        "qudi-core==$core"
    printf '%s\n' "$want" >"$STAMP"
    say "installed in $((SECONDS - start)) s"
fi
