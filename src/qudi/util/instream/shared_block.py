"""Named shared-memory blocks for stream rings.

The writer creates a block with :class:`multiprocessing.shared_memory.SharedMemory` (mode 0600,
owner only) and unlinks it on close; Python's resource tracker removes it should the writer
die without closing. Readers open the block without registering it with their own resource
tracker, so a reader that exits (or is killed) never destroys a block it does not own.
"""

from __future__ import annotations

import mmap
import os
import re
import sys
from multiprocessing import shared_memory

from qudi.util.instream.errors import StreamError, StreamNotFoundError

BLOCK_PREFIX = "qudi_instream_"
_LINUX_SHM_DIR = "/dev/shm"
_STREAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def block_name(stream_name: str) -> str:
    """Name of the shared-memory block that holds the stream ``stream_name``."""
    if not isinstance(stream_name, str) or not _STREAM_NAME.match(stream_name):
        raise ValueError(
            f"invalid stream name {stream_name!r}: use 1 to 100 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return BLOCK_PREFIX + stream_name


def list_streams() -> list[str]:
    """Names of the shared-memory streams on this host (Linux only; elsewhere an empty list)."""
    try:
        entries = os.listdir(_LINUX_SHM_DIR)
    except OSError:
        return []
    return sorted(e[len(BLOCK_PREFIX) :] for e in entries if e.startswith(BLOCK_PREFIX))


def create_block(stream_name: str, size: int) -> shared_memory.SharedMemory:
    """Create the block for a new stream; fails if a stream of that name exists on this host."""
    name = block_name(stream_name)
    try:
        return shared_memory.SharedMemory(name=name, create=True, size=size)
    except FileExistsError:
        raise StreamError(
            f"a stream named '{stream_name}' already exists on this host (shared-memory block "
            f"'{name}'); choose another name, or close the process that owns it"
        ) from None


class AttachedBlock:
    """A read-only view of another process's block: ``buf``, ``size`` and ``close()``."""

    def __init__(self, stream_name: str):
        name = block_name(stream_name)
        self._shm = None
        self._mmap = None
        try:
            if sys.platform.startswith("linux"):
                self._mmap = _map_read_only(os.path.join(_LINUX_SHM_DIR, name))
                self.buf = memoryview(self._mmap)
            else:
                self._shm = _open_untracked(name)
                self.buf = self._shm.buf
        except FileNotFoundError:
            available = ", ".join(list_streams()) or "none"
            raise StreamNotFoundError(
                f"no stream named '{stream_name}' on this host (no shared-memory block '{name}'); "
                f"streams available: {available}"
            ) from None
        self.size = len(self.buf)

    def close(self) -> None:
        """Unmap the block (the block itself stays until its owner unlinks it)."""
        if self._mmap is not None:
            self.buf.release()
            self._mmap.close()
            self._mmap = None
        elif self._shm is not None:
            self._shm.close()
            self._shm = None


def _map_read_only(path: str) -> mmap.mmap:
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            raise StreamError(f"shared-memory block '{path}' is empty")
        return mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)


def _open_untracked(name: str) -> shared_memory.SharedMemory:
    """Open a block without letting this process's resource tracker unlink it at exit."""
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)
    block = shared_memory.SharedMemory(name=name)
    if os.name == "posix":  # Windows has no resource tracker for shared memory
        from multiprocessing import resource_tracker

        resource_tracker.unregister("/" + block.name, "shared_memory")
    return block
