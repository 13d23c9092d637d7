"""A USERSPACE delay relay for kernels without netem: NOT netem, and labelled so wherever used.

    python tests/net/relay.py --listen 10.77.1.1:6000 --target 127.0.0.1:5555 --delay-ms 5

Accepts TCP connections on ``--listen`` and forwards each to ``--target``, holding every chunk
of bytes for ``--delay-ms`` (plus up to ``--jitter-ms``, never reordering) in each direction.
It delays a TCP byte stream; it cannot drop packets (TCP below it retransmits nothing it did
not lose), so it stands in for netem's delay and jitter only, not for its loss. Prints one
JSON line when it listens; ends on SIGTERM.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import signal
import socket
import threading
import time


def pipe(source: socket.socket, sink: socket.socket, delay: float, jitter: float, stop) -> None:
    """Forward ``source`` to ``sink``, each chunk due ``delay`` (+ jitter) after it came."""
    queue: collections.deque[tuple[float, bytes]] = collections.deque()
    ready = threading.Condition()
    done = threading.Event()

    def send() -> None:
        last_due = 0.0
        while True:
            with ready:
                while not queue and not done.is_set():
                    ready.wait(0.1)
                if not queue:
                    break
                due, data = queue.popleft()
            last_due = max(last_due, due)  # never reorder
            pause = last_due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            try:
                sink.sendall(data)
            except OSError:
                break
        sink.close()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    source.settimeout(0.2)
    while not stop.is_set():
        try:
            data = source.recv(1 << 16)
        except TimeoutError:
            continue
        except OSError:
            break
        if not data:
            break
        with ready:
            queue.append((time.monotonic() + delay + random.uniform(0, jitter), data))
            ready.notify()
    done.set()
    sender.join(5)
    source.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--delay-ms", type=float, default=5.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    host, port = args.listen.rsplit(":", 1)
    target_host, target_port = args.target.rsplit(":", 1)
    server = socket.create_server((host, int(port)))
    server.settimeout(0.2)
    print(json.dumps({"ready": True, "relay": "userspace delay, not netem"}), flush=True)
    delay, jitter = args.delay_ms / 1000, args.jitter_ms / 1000
    while not stop.is_set():
        try:
            client, _ = server.accept()
        except TimeoutError:
            continue
        upstream = socket.create_connection((target_host, int(target_port)))
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pipe, args=(a, b, delay, jitter, stop), daemon=True).start()
    server.close()
    print(json.dumps({"ended": True}), flush=True)


if __name__ == "__main__":
    main()
