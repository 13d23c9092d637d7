#!/usr/bin/env bash
# Set up if needed, then run the demo.
#
#   scripts/demo.sh                  # qudi with cfg/instream_dummy.cfg: two live time-series
#                                    # windows on one dummy stream (needs a display)
#   scripts/demo.sh --no-gui         # the same stream in qudi without windows
#                                    # (cfg/instream_dummy_headless.cfg): read it from Jupyter
#   scripts/demo.sh --headless       # no qudi: the stream-core demo in the terminal, 5 s
#   scripts/demo.sh --headless --seconds 3 --readers 4
#
# Without a display (no DISPLAY or WAYLAND_DISPLAY) the stream-core demo runs.
#
# qudi's servers listen on fixed ports of this host: the namespace server (Jupyter and scripts,
# 18861) and the remote modules server (other qudi processes, 12345; the --no-gui config has
# none). If one is taken, most likely by another qudi, the demo says so and does not start;
# choose other ports with DEMO_NAMESPACE_PORT=... and DEMO_REMOTE_PORT=...
#
# Stop qudi with "Quit qudi" in its manager window (--no-gui: Ctrl+C, which skips saving the
# modules' status variables), or cleanly from any terminal with
#   .venv/bin/python scripts/stop_qudi.py
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

mode=gui
case "${1:-}" in
--headless)
    mode=headless
    shift
    ;;
--no-gui)
    mode=no-gui
    shift
    ;;
*)
    if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
        echo "demo: no display found, so running the headless stream demo instead of qudi's windows"
        mode=headless
    fi
    ;;
esac
if [ "$mode" = headless ]; then
    exec "$VENV/bin/python" -m qudi.util.instream.demo "$@"
fi
[ $# -eq 0 ] || { echo "demo: unknown arguments: $*" >&2; exit 2; }

if [ "$mode" = gui ]; then
    config="$ROOT/cfg/instream_dummy.cfg"
else
    config="$ROOT/cfg/instream_dummy_headless.cfg"
fi

# The config with the ports asked for, and each port checked: a port in use would give two
# "Address already in use" tracebacks, and the demo's Jupyter kernel (which connects to the
# namespace port of the config qudi loaded last) would talk to the other qudi.
config=$("$VENV/bin/python" - "$config" "$HOME" "${DEMO_NAMESPACE_PORT:-}" "${DEMO_REMOTE_PORT:-}" <<'EOF'
import re
import socket
import sys
from pathlib import Path

config_path, home, *asked = sys.argv[1:]
text = Path(config_path).read_text()
# variable: (where the config sets the port, the server, what a taken port would break)
SERVERS = {
    "DEMO_NAMESPACE_PORT": (
        r"(namespace_server_port: *)(\d+)",
        "namespace server (Jupyter kernels and scripts reach qudi's modules there)",
        "and this qudi's Jupyter kernel would talk to the other qudi",
    ),
    "DEMO_REMOTE_PORT": (
        r"(remote_modules_server:\n(?: +\w+: .*\n)*? +port: *)(\d+)",
        "remote modules server (other qudi processes connect there)",
        "so other qudi processes could not reach this one's modules",
    ),
}


def free(port: int) -> bool:
    with socket.socket() as sock:  # bound as qudi's rpyc servers bind: localhost, reuse
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("localhost", port))
        except OSError:
            return False
    return True


ports, busy = {}, []
for (variable, (pattern, server, consequence)), value in zip(SERVERS.items(), asked):
    match = re.search(pattern, text)
    if match is None:
        continue  # this config starts no such server
    port = int(match.group(2))
    if value:
        if not value.isdigit() or not 0 < int(value) < 65536:
            sys.exit(f"demo: {variable}={value!r} is not a port number (1 to 65535)")
        port = int(value)
        text = text[: match.start(2)] + str(port) + text[match.end(2) :]
    ports[variable] = port
    if not free(port):
        busy.append(variable)

if busy:
    message = []
    for variable in busy:
        _, server, consequence = SERVERS[variable]
        message += [
            f"demo: port {ports[variable]} is already in use on this host, most likely by another",
            f"      qudi: this qudi's {server}",
            f'      would fail with "Address already in use", {consequence}.',
        ]
    suggestion = dict(ports)
    for variable in busy:
        candidate = ports[variable] + 1
        while not free(candidate) or candidate in suggestion.values():
            candidate += 1
        suggestion[variable] = candidate
    settings = " ".join(f"{variable}={port}" for variable, port in suggestion.items())
    no_gui = " --no-gui" if "remote_modules_server" not in text else ""
    message += [
        "      Stop the other qudi (.venv/bin/python scripts/stop_qudi.py PORT), or start the demo",
        f"      on ports that are free now: {settings} ./scripts/demo.sh{no_gui}",
    ]
    sys.exit("\n".join(message))

if any(asked):
    # a copy with the ports asked for; qudi remembers it, so its Jupyter kernel finds the port
    path = Path(home) / Path(config_path).name
    path.write_text(f"# {config_path} on the ports asked for (written by demo.sh)\n{text}")
    config_path = str(path)
for variable, port in ports.items():
    print(f"demo: qudi's {SERVERS[variable][1].split(' (')[0]} on port {port}", file=sys.stderr)
print(config_path)
EOF
)

# qudi's Jupyter kernel, for notebooks on this demo (the manager window also needs it: without
# it, it shows an error popup and never quits). It lives in the demo's HOME, and connects to
# the qudi of the config last loaded there: this one.
"$VENV/bin/python" -m qudi.core.qudikernel install >/dev/null
echo "demo: Jupyter with qudi's kernel on this demo: HOME=\"$HOME\" \"$VENV/bin/jupyter\" lab" >&2
if [ "$mode" = no-gui ]; then
    echo "demo: qudi without windows; stop it with Ctrl+C or: .venv/bin/python scripts/stop_qudi.py" >&2
    exec "$VENV/bin/qudi" --no-gui -c "$config"  # -c: absolute path
fi
exec "$VENV/bin/qudi" -c "$config"  # -c: absolute path
