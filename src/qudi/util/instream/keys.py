"""CURVE key files for the ZeroMQ transport: make them, and read them back with checks.

A key pair is two files in pyzmq's ``zmq.auth`` certificate format: ``NAME.key`` (the public
key: give it to the other side) and ``NAME.key_secret`` (both keys: never leave this host).
Make one per publishing host and one per subscribing host::

    python -m qudi.util.instream.keys new daq-pc            # into ~/qudi/instream_keys
    python -m qudi.util.instream.keys new lab-laptop --dir /path/to/keys

Both files are created owner-only (mode 0600, in a folder of mode 0700 if it is new); a secret
key file that others may read is refused when it is loaded, as ssh refuses such a key. The
publisher allows the clients whose public key files lie in its ``allowed_clients`` folder;
removing one's file there revokes it, also while the stream runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import zmq
import zmq.auth

__all__ = [
    "DEFAULT_KEY_DIR",
    "KeyFileError",
    "load_public_key",
    "load_secret_key",
    "main",
    "new_keys",
    "public_keys_in",
]

#: Where ``new`` puts key files unless told otherwise (qudi's own folder of the user).
DEFAULT_KEY_DIR = Path("~/qudi/instream_keys")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MAKE = "python -m qudi.util.instream.keys new NAME"


class KeyFileError(ValueError):
    """A key file that is missing, unreadable, of the wrong kind or readable by others."""


def new_keys(name: str, directory: str | os.PathLike[str] = DEFAULT_KEY_DIR) -> tuple[Path, Path]:
    """Make a CURVE key pair ``NAME.key`` (public) and ``NAME.key_secret`` in ``directory``.

    The files appear complete and owner-only (they are written in a private temporary folder
    and moved in); the folder is created with mode 0700 if it does not exist.

    Returns
    -------
    (public file, secret file)

    Raises
    ------
    ValueError
        For a name that is not 1 to 64 letters, digits, '.', '_' or '-'.
    FileExistsError
        If either file exists already (nothing is overwritten).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"key name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-' (e.g. the host name)"
        )
    folder = Path(directory).expanduser()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise FileExistsError(f"{path} exists already: choose another name or remove it")
    scratch = tempfile.mkdtemp(prefix=".new-key-", dir=folder)  # mode 0700
    try:
        made_public, made_secret = zmq.auth.create_certificates(scratch, name)
        for made, final in ((made_public, public), (made_secret, secret)):
            os.chmod(made, 0o600)
            os.replace(made, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return public, secret


def _read(path: str | os.PathLike[str], option: str) -> tuple[Path, bytes | None, bytes | None]:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise KeyFileError(f"option '{option}' is {path!r}: give the path of a key file")
    file = Path(path).expanduser()
    if not file.is_file():
        raise KeyFileError(
            f"option '{option}': no key file at {str(file)!r} (make a key pair with {_MAKE})"
        )
    try:
        public, secret = zmq.auth.load_certificate(file)
    except (OSError, ValueError, zmq.ZMQError) as exc:
        raise KeyFileError(
            f"option '{option}': {str(file)!r} is not a key file made by {_MAKE} ({exc})"
        ) from None
    if public is None or len(public) != 40:
        raise KeyFileError(f"option '{option}': {str(file)!r} holds no public key")
    return file, public, secret


def load_secret_key(path: str | os.PathLike[str], option: str) -> tuple[bytes, bytes]:
    """``(public, secret)`` keys (Z85) of a ``.key_secret`` file named by config ``option``.

    Raises
    ------
    KeyFileError
        If the file is missing, holds no secret key, or may be read by group or others (the
        message names the option, the file and the fix).
    """
    file, public, secret = _read(path, option)
    if secret is None or len(secret) != 40:
        raise KeyFileError(
            f"option '{option}': {str(file)!r} holds no secret key: name the NAME.key_secret "
            "file here (the NAME.key file is the public half, for the other side)"
        )
    mode = stat.S_IMODE(file.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"option '{option}': the secret key file {str(file)!r} has mode {mode:04o}, so "
            f"others on this host may read it: run 'chmod 600 {file}'"
        )
    assert public is not None
    return public, secret


def load_public_key(path: str | os.PathLike[str], option: str) -> bytes:
    """The public key (Z85) of a ``.key`` (or ``.key_secret``) file named by config ``option``.

    Raises
    ------
    KeyFileError
        If the file is missing or holds no key.
    """
    _, public, _ = _read(path, option)
    assert public is not None
    return public


def public_keys_in(directory: str | os.PathLike[str], option: str) -> dict[bytes, str]:
    """The public keys (Z85) of the ``*.key`` files in ``directory``, with their file names.

    A file that is not a key file is skipped (it cannot allow anyone).

    Raises
    ------
    KeyFileError
        If ``directory`` is no folder.
    """
    folder = Path(directory).expanduser()
    if not folder.is_dir():
        raise KeyFileError(
            f"option '{option}' is {str(directory)!r}, not a folder: name the folder that holds "
            "the public key files (NAME.key) of the clients allowed to subscribe"
        )
    keys: dict[bytes, str] = {}
    for file in sorted(folder.glob("*.key")):
        try:
            public, _ = zmq.auth.load_certificate(file)
        except (OSError, ValueError, zmq.ZMQError):
            continue
        if public is not None and len(public) == 40:
            keys[public] = file.name
    return keys


def main(argv: list[str] | None = None) -> int:
    """The command line: ``new NAME [--dir DIR]`` and ``show FILE``."""
    parser = argparse.ArgumentParser(
        prog="python -m qudi.util.instream.keys", description="CURVE key files for qudi-instream"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="make a key pair NAME.key and NAME.key_secret")
    new.add_argument("name")
    new.add_argument("--dir", default=str(DEFAULT_KEY_DIR), help="default: %(default)s")
    show = commands.add_parser("show", help="print the public key of a key file")
    show.add_argument("file")
    args = parser.parse_args(argv)
    try:
        if args.command == "new":
            public, secret = new_keys(args.name, args.dir)
            print(f"public key (give it to the other side): {public}")
            print(f"secret key (keep it on this host):      {secret}")
        else:
            print(load_public_key(args.file, "file").decode())
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
