"""Named shared-memory blocks for stream rings.

Where blocks live
-----------------
On Linux a stream's block is the file ``/dev/shm/qudi_instream_<stream name>``. The environment
variable ``QUDI_INSTREAM_SHM_DIR`` (an absolute path, read at every call) puts them in another
directory instead, for tests or for a bigger tmpfs than a container's /dev/shm; the writer and
every reader must then see the same value, and a writer that is killed leaves its block there
(Python's resource tracker removes blocks in /dev/shm only). Elsewhere (macOS, Windows) blocks
are :class:`multiprocessing.shared_memory.SharedMemory` objects and none of the checks below
apply.

The writer
----------
The writer creates the block exclusively (never over an existing entry, never through a
symbolic link), owner only (mode 0600), and reserves every page of it at once
(``posix_fallocate``). A block is a tmpfs file, sparse unless reserved: two 40 MiB rings in a
64 MiB /dev/shm would both be accepted, and the writer would die of SIGBUS on the first page the
kernel could not back. Reserved, a block that does not fit is refused at creation with a
:class:`~qudi.util.instream.errors.StreamCapacityError`, and a block that was created can be
written to the end whatever else fills /dev/shm later. The writer unlinks its block on close;
Python's resource tracker removes it should the writer die without closing.

Readers
-------
/dev/shm is writable by every local user, so anything may be found under a stream's name. A
reader looks before it opens (``lstat``), opens without following a symbolic link and without
blocking (a FIFO would block ``open`` forever), and checks again what it opened (``fstat``). It
maps a block only if it is a non-empty regular file owned by this user (the effective uid)
that no other user may write; anything else (a FIFO, a directory, a socket, a device, a
symbolic link, another user's file, a group- or world-writable file) is refused with a
:class:`~qudi.util.instream.errors.StreamFormatError` that names the stream and what was found.
:func:`list_streams` lists only the names that pass these checks. Readers map the block
read-only and never register it with their resource tracker, so a reader that exits, or is
killed, never removes a block it does not own.

What is and is not protected
----------------------------
- *Other users* cannot read a block (mode 0600), cannot unlink or replace it (/dev/shm is
  sticky), and cannot make a reader attach a block they planted. They can take a name before
  its writer exists: the writer is then refused with a message that says what holds the name.
- *Processes of the same user* can do anything the writer can. They can rewrite the data and
  the header (the ring checks the header and the control words it reads, but cannot tell
  plausible data from the writer's). And they can **truncate** the block (``os.truncate``,
  ``ftruncate``): the pages past the new end are then gone from every mapping, and the next
  access to one of them kills the process that makes it with SIGBUS, the writer and every
  attached reader alike. That is inherent to shared mappings of a named file: nothing stops
  the owner of a file from truncating it (file seals exist for anonymous memfds only), and a
  Python process cannot recover from SIGBUS. Readers check the size when they attach, not on
  every access.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import re
import stat
import sys
from multiprocessing import shared_memory

from qudi.util.instream.errors import (
    StreamCapacityError,
    StreamError,
    StreamFormatError,
    StreamNotFoundError,
    format_bytes,
    format_count,
)

BLOCK_PREFIX = "qudi_instream_"
SHM_DIR_ENV = "QUDI_INSTREAM_SHM_DIR"
_LINUX_SHM_DIR = "/dev/shm"
_STREAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_ON_LINUX = sys.platform.startswith("linux")
# Open without following a link, without blocking on a FIFO, without taking a terminal.
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
_READ_FLAGS |= getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
_CREATE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
# Python 3.13 can map without keeping a duplicate of the file descriptor.
_MMAP_OPTIONS = {"trackfd": False} if sys.version_info >= (3, 13) else {}
_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFLNK: "a symbolic link",
}


def block_name(stream_name: str) -> str:
    """Name of the shared-memory block that holds the stream ``stream_name``.

    Parameters
    ----------
    stream_name
        1 to 100 letters, digits, ``_``, ``.`` or ``-``, starting with a letter or digit.

    Returns
    -------
    str
        ``"qudi_instream_" + stream_name``.

    Raises
    ------
    ValueError
        If ``stream_name`` is not a valid stream name.
    """
    if not isinstance(stream_name, str) or not _STREAM_NAME.fullmatch(stream_name):
        raise ValueError(
            f"invalid stream name {stream_name!r}: use 1 to 100 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return BLOCK_PREFIX + stream_name


def block_directory() -> str | None:
    """The directory that holds the blocks: ``$QUDI_INSTREAM_SHM_DIR``, else /dev/shm.

    Returns
    -------
    str or None
        The directory on Linux; None elsewhere, where blocks are not files.

    Raises
    ------
    StreamError
        If ``QUDI_INSTREAM_SHM_DIR`` is set to a relative path (processes with different
        working directories would not find each other's streams).
    """
    if not _ON_LINUX:
        return None
    directory = os.environ.get(SHM_DIR_ENV, "")
    if not directory:
        return _LINUX_SHM_DIR
    if not os.path.isabs(directory):
        raise StreamError(
            f"{SHM_DIR_ENV}={directory!r} is not an absolute path; set it to the absolute "
            f"path of a directory (a tmpfs), or unset it to use {_LINUX_SHM_DIR}"
        )
    return os.path.normpath(directory)


def list_streams() -> list[str]:
    """Names of the shared-memory streams on this host that :class:`AttachedBlock` accepts.

    Entries under the block prefix that are no stream of this user (a bad name, anything but a
    non-empty regular file of this user that others cannot write) are left out. On platforms
    other than Linux the list is empty.

    Returns
    -------
    list of str
        Stream names, sorted.
    """
    directory = block_directory()
    if directory is None:
        return []
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    names = []
    for entry in entries:
        name = entry[len(BLOCK_PREFIX) :]
        if not entry.startswith(BLOCK_PREFIX) or not _STREAM_NAME.fullmatch(name):
            continue
        try:
            fd, _ = _open_block(name, os.path.join(directory, entry))
        except (StreamError, FileNotFoundError):  # not a block of ours, or gone meanwhile
            continue
        os.close(fd)
        names.append(name)
    return sorted(names)


def free_bytes() -> int | None:
    """Bytes free for new blocks in :func:`block_directory`, None where that cannot be known."""
    directory = block_directory()
    if directory is None:
        return None
    try:
        stats = os.statvfs(directory)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def create_block(
    stream_name: str, size: int, *, capacity: int | None = None
) -> CreatedBlock | shared_memory.SharedMemory:
    """Create the block for a new stream, with all of its pages reserved.

    Parameters
    ----------
    stream_name
        The stream's name (see :func:`block_name`).
    size
        Bytes of the block, at least 1.
    capacity
        Samples the ring will hold; only carried by a :class:`StreamCapacityError`.

    Returns
    -------
    CreatedBlock or multiprocessing.shared_memory.SharedMemory
        The block, mapped read-write: ``buf``, ``size``, ``close()`` and ``unlink()``. A
        :class:`CreatedBlock` on Linux, a ``SharedMemory`` elsewhere.

    Raises
    ------
    ValueError
        If ``stream_name`` is not a valid stream name or ``size`` is not a positive integer.
    StreamCapacityError
        If the block does not fit in the free shared memory; nothing is left behind.
    StreamError
        If something of that name exists on this host, or the block cannot be created.
    """
    name = block_name(stream_name)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"block size must be a positive number of bytes, got {size!r}")
    directory = block_directory()
    if directory is None:
        try:
            return shared_memory.SharedMemory(name=name, create=True, size=size)
        except FileExistsError:
            raise _name_taken(stream_name) from None
    return CreatedBlock._create(stream_name, directory, int(size), capacity)


class CreatedBlock:
    """The writer's block on Linux: a tmpfs file with every page reserved, mapped read-write.

    Made by :func:`create_block`; has the parts of ``SharedMemory`` the ring uses: ``buf``,
    ``name``, ``size``, ``close()`` and ``unlink()``.
    """

    def __init__(self, path: str, mapping: mmap.mmap, identity: tuple[int, int], tracked: bool):
        self.path = path
        self.name = os.path.basename(path)
        self.size = len(mapping)
        self._mmap: mmap.mmap | None = mapping
        self.buf = memoryview(mapping)
        self._identity = identity
        self._tracked = tracked
        self._unlinked = False

    @classmethod
    def _create(
        cls, stream_name: str, directory: str, size: int, capacity: int | None
    ) -> CreatedBlock:
        path = os.path.join(directory, block_name(stream_name))
        try:
            fd = os.open(path, _CREATE_FLAGS, 0o600)
        except FileExistsError:
            raise _name_taken(stream_name) from None
        except OSError as exc:
            raise _creation_failed(stream_name, path, size, capacity, exc) from None
        identity = None
        try:
            opened = os.fstat(fd)
            identity = (opened.st_dev, opened.st_ino)
            os.fchmod(fd, 0o600)  # whatever the umask: owner only
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, size)  # reserve every page now: no SIGBUS later
            else:
                os.ftruncate(fd, size)
            mapping = mmap.mmap(fd, size, **_MMAP_OPTIONS)
        except BaseException as exc:
            os.close(fd)
            _remove_if_same(path, identity)
            if isinstance(exc, OSError):
                raise _creation_failed(stream_name, path, size, capacity, exc) from None
            raise
        os.close(fd)
        tracked = directory == _LINUX_SHM_DIR
        if tracked:  # the resource tracker unlinks it should this process die
            from multiprocessing import resource_tracker

            resource_tracker.register("/" + block_name(stream_name), "shared_memory")
        return cls(path, mapping, identity, tracked)

    def close(self) -> None:
        """Unmap the block (raises BufferError while views of ``buf`` are alive)."""
        if self._mmap is not None:
            self.buf.release()
            self._mmap.close()
            self._mmap = None

    def unlink(self) -> None:
        """Remove the block's name (mappings stay valid until closed); a second call does nothing.

        A file that has replaced the block under its name since is left alone.
        """
        if self._unlinked:
            return
        self._unlinked = True
        _remove_if_same(self.path, self._identity)
        if self._tracked:
            from multiprocessing import resource_tracker

            resource_tracker.unregister("/" + self.name, "shared_memory")


def _remove_if_same(path: str, identity: tuple[int, int] | None) -> None:
    """Unlink ``path`` if it is still the file ``identity`` (device, inode)."""
    if identity is None:
        return
    with contextlib.suppress(OSError):
        found = os.lstat(path)
        if (found.st_dev, found.st_ino) == identity:
            os.unlink(path)


def _creation_failed(
    stream_name: str, path: str, size: int, capacity: int | None, exc: OSError
) -> StreamError:
    directory = os.path.dirname(path)
    needs = f"{format_bytes(size)} ({format_count(size)} bytes)"
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.ENOMEM, errno.EDQUOT):
        free = free_bytes()
        room = f"{directory} has {format_bytes(free)} free" if free is not None else ""
        if free is None or free >= size or exc.errno != errno.ENOSPC:
            room = ", ".join(filter(None, [room, f"the kernel refused: {exc.strerror}"]))
        return StreamCapacityError(
            f"cannot create stream '{stream_name}': its shared-memory block needs {needs}, "
            f"and {room}. Choose a smaller capacity (buffer size), close other streams or "
            f"remove files from {directory} that are no longer needed, or give {directory} "
            f"more room (Docker: --shm-size; or set {SHM_DIR_ENV} to a bigger tmpfs for the "
            "writer and all its readers)",
            capacity,
            size,
        )
    where = f" (set by {SHM_DIR_ENV})" if directory != _LINUX_SHM_DIR else ""
    return StreamError(
        f"cannot create stream '{stream_name}': creating its {needs} block '{path}'{where} "
        f"failed: {exc.strerror or exc}"
    )


class AttachedBlock:
    """A read-only view of another process's block: ``buf``, ``size`` and ``close()``.

    Parameters
    ----------
    stream_name
        The stream whose block to map.

    Raises
    ------
    ValueError
        If ``stream_name`` is not a valid stream name.
    StreamNotFoundError
        If there is no entry of that name.
    StreamFormatError
        If the entry is not a block of this user (see the module's docstring).
    StreamError
        If the block cannot be mapped.
    """

    def __init__(self, stream_name: str):
        name = block_name(stream_name)
        self._shm: shared_memory.SharedMemory | None = None
        self._mmap: mmap.mmap | None = None
        try:
            directory = block_directory()
            if directory is not None:
                self._mmap = _map_read_only(stream_name, os.path.join(directory, name))
                self.buf = memoryview(self._mmap)
            else:
                self._shm = _open_untracked(name)
                if self._shm.buf is None:  # only after close(), which nothing did yet
                    raise StreamError(f"shared-memory block '{name}' opened without a mapping")
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


def _refusal(entry: os.stat_result, path: str, link: bool) -> str | None:
    """Why ``entry`` is no block of this user (None if it is one)."""
    kind = stat.S_IFMT(entry.st_mode)
    if kind != stat.S_IFREG:
        what = _KINDS.get(kind, f"a file of type {kind:#o}")
        if link:
            with contextlib.suppress(OSError):
                what += f" to '{os.readlink(path)}'"
        return f"is {what}, not a regular file"
    euid = os.geteuid()
    if entry.st_uid != euid:
        return f"belongs to {_user(entry.st_uid)}, not to this user ({_user(euid)})"
    if entry.st_mode & 0o022:
        return f"is writable by other users (mode {entry.st_mode & 0o7777:04o}; a block is 0600)"
    if entry.st_size == 0:
        return "is empty (0 bytes)"
    return None


def _user(uid: int) -> str:
    try:
        import pwd

        return f"uid {uid} ('{pwd.getpwuid(uid).pw_name}')"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _refused(stream_name: str, path: str, reason: str) -> StreamFormatError:
    return StreamFormatError(
        f"cannot attach stream '{stream_name}': '{path}' {reason}. A stream's block is a "
        "non-empty regular file of this user that only its owner can write; this entry was not "
        "made by a qudi-instream writer of yours: remove it if no stream should have that name"
    )


def _open_block(stream_name: str, path: str) -> tuple[int, os.stat_result]:
    """Open the block at ``path`` read-only after checking what it is; ``(fd, fstat)``.

    Raises FileNotFoundError if there is nothing at ``path``, StreamFormatError if what is
    there is not a block of this user. Never follows a link, never blocks.
    """
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StreamError(
            f"cannot attach stream '{stream_name}': cannot look at '{path}' ({exc.strerror})"
        ) from None
    reason = _refusal(found, path, link=True)
    if reason is not None:  # refused before opening: opening some devices does things
        raise _refused(stream_name, path, reason)
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:  # replaced since lstat (ELOOP: by a link), or not readable
        raise _refused(stream_name, path, f"cannot be opened ({exc.strerror})") from None
    try:
        opened = os.fstat(fd)
        reason = _refusal(opened, path, link=False)
        if reason is not None:
            raise _refused(stream_name, path, reason)
    except BaseException:
        os.close(fd)
        raise
    return fd, opened


def _map_read_only(stream_name: str, path: str) -> mmap.mmap:
    fd, opened = _open_block(stream_name, path)
    try:
        return mmap.mmap(fd, opened.st_size, access=mmap.ACCESS_READ, **_MMAP_OPTIONS)
    except (OSError, ValueError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise StreamError(
            f"cannot attach stream '{stream_name}': mapping its block '{path}' "
            f"({opened.st_size} bytes) failed: {reason}"
        ) from None
    finally:
        os.close(fd)


def _name_taken(stream_name: str) -> StreamError:
    """The error for a writer whose block name exists already, saying what holds it."""
    name = block_name(stream_name)
    directory = block_directory()
    if directory is not None:
        path = os.path.join(directory, name)
        try:
            found = os.lstat(path)
        except OSError:
            found = None
        reason = None if found is None else _refusal(found, path, link=True)
        if reason is not None:
            return StreamError(
                f"cannot create stream '{stream_name}': '{path}' already exists and {reason}, "
                "so it is no stream of yours; remove it, or choose another name"
            )
    return StreamError(
        f"a stream named '{stream_name}' already exists on this host (shared-memory block "
        f"'{name}'); choose another name, or close the process that owns it"
    )


def _open_untracked(name: str) -> shared_memory.SharedMemory:
    """Open a block without letting this process's resource tracker unlink it at exit."""
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)
    block = shared_memory.SharedMemory(name=name)
    if os.name == "posix":  # Windows has no resource tracker for shared memory
        from multiprocessing import resource_tracker

        resource_tracker.unregister("/" + block.name, "shared_memory")
    return block
