"""Hostile local input to the shared-memory block layer (issue 21, items 1, 2, 7 and 10).

/dev/shm is world-writable: any local user can plant an entry under a stream's name, and any
process of this user can replace, truncate or fill it. These tests plant such entries (FIFOs,
directories, symbolic links, sockets, other users' files) and check that ``attach`` refuses
each one at once with a :class:`StreamFormatError` that names the stream and what was found,
that ``list_streams`` lists only what ``attach`` accepts, that the writer reserves its pages
so that a full /dev/shm can never kill it with SIGBUS, and that nothing leaks.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import numpy as np
import pytest

from qudi.util.instream import (
    StreamError,
    StreamFormatError,
    StreamNotFoundError,
    StreamRing,
    attach,
    list_streams,
)
from qudi.util.instream.errors import StreamCapacityError
from qudi.util.instream.shared_block import (
    BLOCK_PREFIX,
    SHM_DIR_ENV,
    AttachedBlock,
    block_name,
    create_block,
)

SHM = "/dev/shm"
MiB = 2**20
OTHER_UID = 65534  # "nobody" on Debian; any uid that is not ours will do
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="planting another user's file needs root")
pytestmark = pytest.mark.skipif(not os.path.isdir(SHM), reason="needs Linux /dev/shm")


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def mapped_blocks() -> list[str]:
    with open("/proc/self/maps") as maps:
        return [line for line in maps if BLOCK_PREFIX in line]


@contextlib.contextmanager
def no_leaks() -> Iterator[None]:
    """Fail if the body leaves a file descriptor open or a block mapped."""
    fds, maps = open_fds(), mapped_blocks()
    yield
    assert open_fds() == fds
    assert mapped_blocks() == maps


def _ring_image(name: str) -> bytes:
    """The bytes of a real, valid ring block (so that attaching it would succeed)."""
    with StreamRing(16, 2, shared=True, name=name) as ring:
        ring.write(np.full((4, 2), 7.0))
        return bytes(ring._buf)


@contextlib.contextmanager
def planted(stream_name: str, kind: str, *, other: str | None = None) -> Iterator[str]:
    """Plant a foreign entry of ``kind`` at the block path of ``stream_name``; remove it after."""
    path = os.path.join(SHM, block_name(stream_name))
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "directory":
        os.mkdir(path, 0o700)
    elif kind == "socket":
        os.mknod(path, 0o600 | stat.S_IFSOCK)
    elif kind == "symlink":
        os.symlink(other, path)
    elif kind in ("ring", "foreign ring", "open ring"):
        image = _ring_image(stream_name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, image)
            if kind == "foreign ring":
                os.fchown(fd, OTHER_UID, OTHER_UID)
                os.fchmod(fd, 0o644)  # readable by all, as a planted block would be
            elif kind == "open ring":
                os.fchmod(fd, 0o666)
        finally:
            os.close(fd)
    elif kind == "empty":
        open(path, "wb").close()
    else:
        raise AssertionError(kind)
    try:
        yield path
    finally:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


# ---------------------------------------------------------- item 7: never hang, no raw OSError
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("kind", "found"),
    [("fifo", "a FIFO"), ("directory", "a directory"), ("socket", "a socket")],
)
def test_a_planted_entry_that_is_not_a_file_is_refused_at_once(stream_name, kind, found):
    with planted(stream_name, kind), no_leaks():
        for _ in range(2):  # the refusal changes nothing: the same answer again
            with pytest.raises(StreamFormatError, match=f"stream '{stream_name}'.*{found}"):
                attach(stream_name)


@pytest.mark.timeout(30)
def test_a_symlink_to_a_fifo_is_refused_without_hanging(stream_name, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with planted(stream_name, "symlink", other=str(fifo)), no_leaks():
        with pytest.raises(StreamFormatError, match=f"stream '{stream_name}'.*symbolic link"):
            attach(stream_name)


def test_a_symlink_to_a_valid_block_is_refused(stream_name):
    target = f"{stream_name}_target"
    with StreamRing(16, 2, shared=True, name=target):
        with planted(stream_name, "symlink", other=os.path.join(SHM, block_name(target))):
            with no_leaks(), pytest.raises(StreamFormatError, match="symbolic link"):
                attach(stream_name)


def test_a_symlink_to_dev_zero_is_refused(stream_name):
    with planted(stream_name, "symlink", other="/dev/zero"), no_leaks():
        with pytest.raises(StreamFormatError, match="symbolic link.*/dev/zero"):
            attach(stream_name)


def test_an_empty_block_is_refused(stream_name):
    with planted(stream_name, "empty"), no_leaks():
        with pytest.raises(StreamFormatError, match=f"stream '{stream_name}'.*empty"):
            attach(stream_name)


# ------------------------------------------------------- item 1 (file part): only this user's files
@needs_root
def test_a_block_planted_by_another_user_is_refused(stream_name):
    with planted(stream_name, "foreign ring"), no_leaks():
        with pytest.raises(StreamFormatError, match=f"stream '{stream_name}'.*uid {OTHER_UID}"):
            attach(stream_name)
        with pytest.raises(StreamFormatError, match=f"uid {OTHER_UID}"):
            AttachedBlock(stream_name)


def test_a_block_others_can_write_is_refused(stream_name):
    with planted(stream_name, "open ring"), no_leaks():
        with pytest.raises(StreamFormatError, match="writable by other users.*0666"):
            attach(stream_name)


def test_a_valid_block_of_this_user_is_still_attached(stream_name):
    with planted(stream_name, "ring"):
        with no_leaks():
            ring = attach(stream_name)
            assert ring.reader("probe").latest(4).tolist() == [[7.0, 7.0]] * 4
            ring.close()


# -------------------------------------------------------- item 10: list only what attach accepts
@pytest.mark.timeout(30)
def test_list_streams_lists_only_names_attach_accepts(stream_name, tmp_path):
    bad_name = os.path.join(SHM, f"{BLOCK_PREFIX}bad name! {os.getpid()}")
    open(bad_name, "wb").close()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    kinds = ["fifo", "directory", "socket", "empty", "open ring"]
    if IS_ROOT:
        kinds.append("foreign ring")
    try:
        with contextlib.ExitStack() as stack:
            foreign = [f"{stream_name}_{kind.replace(' ', '_')}" for kind in kinds]
            for name, kind in zip(foreign, kinds, strict=True):
                stack.enter_context(planted(name, kind))
            stack.enter_context(planted(f"{stream_name}_link", "symlink", other=str(fifo)))
            foreign.append(f"{stream_name}_link")
            with StreamRing(16, 2, shared=True, name=stream_name), no_leaks():
                listed = list_streams()
                assert stream_name in listed
                assert not set(foreign) & set(listed)
                assert not [name for name in listed if "bad name" in name]
                for name in listed:
                    if name.startswith(stream_name):
                        attach(name).close()
    finally:
        os.unlink(bad_name)


# ------------------------------------------------------------- the writer meets a planted name
@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["fifo", "directory", "empty"])
def test_a_writer_whose_name_is_taken_says_by_what_and_changes_nothing(stream_name, kind):
    with planted(stream_name, kind) as path:
        before = os.lstat(path)
        with no_leaks(), pytest.raises(StreamError, match=f"'{stream_name}'.*already exists"):
            StreamRing(16, 2, shared=True, name=stream_name)
        after = os.lstat(path)
        assert (after.st_ino, after.st_mode, after.st_size) == (
            before.st_ino,
            before.st_mode,
            before.st_size,
        )


def test_a_missing_stream_is_still_not_found(stream_name):
    with no_leaks(), pytest.raises(StreamNotFoundError, match=f"no stream named '{stream_name}'"):
        attach(stream_name)


# ------------------------------------------------------------------- helpers for the SIGBUS tests
def _run_isolated(script: str, shm_size: str = "16m") -> subprocess.CompletedProcess:
    """Run ``script`` in a child with its own mount namespace and a small tmpfs as /dev/shm.

    Nothing outside the child sees that /dev/shm; it goes away with the child.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs unshare (util-linux)")
    probe = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "true"], capture_output=True
    )
    if probe.returncode != 0 or not IS_ROOT:
        pytest.skip("needs a private mount namespace (root, or CAP_SYS_ADMIN)")
    command = (
        f"mount -t tmpfs -o size={shm_size},mode=1777 tmpfs /dev/shm && "
        f'exec "{sys.executable}" -c "$0"'
    )
    return subprocess.run(
        [unshare, "--mount", "--propagation", "private", "sh", "-c", command, script],
        capture_output=True,
        text=True,
        timeout=120,
    )


# -------------------------------------------------------- item 2: no SIGBUS from a full /dev/shm
def test_two_rings_larger_than_dev_shm_never_kill_the_writer():
    # The reproducer of the finding: a 16 MiB /dev/shm and two 10 MiB rings. Before the fix
    # both were accepted (sparse blocks), and filling the second killed the writer (SIGBUS).
    script = textwrap.dedent(
        """
        import numpy as np
        from qudi.util.instream import StreamRing
        from qudi.util.instream.errors import StreamCapacityError
        samples = 10 * 2**20 // 8 // 2
        first = StreamRing(samples, 2, shared=True, name="first")
        try:
            second = StreamRing(samples, 2, shared=True, name="second")
        except StreamCapacityError as exc:
            print("refused:", exc)
        else:
            second.write(np.ones((samples, 2)))
            print("second filled", flush=True)
        first.write(np.ones((samples, 2)))  # with the second still open
        print("first filled")
        first.close()
        """
    )
    done = _run_isolated(script)
    assert done.returncode == 0, f"writer died (code {done.returncode}): {done.stderr}"
    assert "refused:" in done.stdout and "first filled" in done.stdout, done.stdout


@pytest.fixture
def small_shm(tmp_path, monkeypatch) -> Iterator[str]:
    """An 8 MiB tmpfs of its own, made the block directory through QUDI_INSTREAM_SHM_DIR."""
    if not IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    directory = tmp_path / "shm"
    directory.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=1777", "tmpfs", str(directory)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    monkeypatch.setenv(SHM_DIR_ENV, str(directory))
    try:
        yield str(directory)
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def used_bytes(directory: str) -> int:
    stats = os.statvfs(directory)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


def test_a_block_has_its_pages_reserved_when_it_is_created(small_shm, stream_name):
    with no_leaks():
        block = create_block(stream_name, 3 * MiB, capacity=1000)
        try:
            path = os.path.join(small_shm, block_name(stream_name))
            assert os.stat(path).st_blocks * 512 >= 3 * MiB  # backed, not sparse
            assert used_bytes(small_shm) >= 3 * MiB  # before a single byte was written
            assert os.stat(path).st_mode & 0o777 == 0o600
        finally:
            block.close()
            block.unlink()
        assert os.listdir(small_shm) == []
        assert used_bytes(small_shm) == 0


def test_a_block_that_does_not_fit_is_refused_and_nothing_is_left(small_shm, stream_name):
    first = create_block(f"{stream_name}_first", 5 * MiB)
    try:
        used = used_bytes(small_shm)
        with no_leaks():
            for _ in range(2):  # refused again the same way: the first refusal left nothing
                with pytest.raises(StreamCapacityError) as refused:
                    create_block(stream_name, 4 * MiB, capacity=4242)
                assert os.listdir(small_shm) == [block_name(f"{stream_name}_first")]
                assert used_bytes(small_shm) == used
        message = str(refused.value)
        assert f"stream '{stream_name}'" in message
        assert "needs 4.0 MiB (4 194 304 bytes)" in message
        assert f"{small_shm} has 3.0 MiB free" in message
        assert "smaller capacity" in message and "--shm-size" in message
        assert (refused.value.nbytes, refused.value.capacity) == (4 * MiB, 4242)
        first.buf[:] = b"\x01" * len(first.buf)  # the first block is whole and writable
    finally:
        first.close()
        first.unlink()
    assert used_bytes(small_shm) == 0


def test_a_ring_that_does_not_fit_is_refused(small_shm, stream_name):
    with no_leaks(), pytest.raises(StreamCapacityError):
        StreamRing(2 * MiB, 1, shared=True, name=stream_name)  # 16 MiB of float64
    assert os.listdir(small_shm) == []


def test_the_writer_survives_when_someone_fills_the_tmpfs_later(small_shm):
    # A ring is created, then another file takes every free byte; writing the whole ring must
    # still work (a sparse block would be killed by SIGBUS here, hence the child process).
    script = textwrap.dedent(
        f"""
        import errno, os
        import numpy as np
        from qudi.util.instream import StreamRing
        samples = 4 * 2**20 // 8
        ring = StreamRing(samples, 1, shared=True, name="survivor")
        fd = os.open({small_shm!r} + "/filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"x" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        os.close(fd)
        ring.write(np.ones((samples, 1)))
        print("written", ring.write_index, flush=True)
        ring.close()
        os.unlink({small_shm!r} + "/filler")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"writer died (code {done.returncode}): {done.stderr}"
    assert done.stdout.split() == ["written", str(4 * MiB // 8)]
    assert os.listdir(small_shm) == []


def test_a_relative_block_directory_is_refused(monkeypatch, stream_name):
    monkeypatch.setenv(SHM_DIR_ENV, "relative/shm")
    with pytest.raises(StreamError, match=f"{SHM_DIR_ENV}='relative/shm' is not an absolute"):
        create_block(stream_name, 4096)
    with pytest.raises(StreamError, match="not an absolute"):
        attach(stream_name)


def test_a_missing_block_directory_is_named(monkeypatch, tmp_path, stream_name):
    missing = tmp_path / "missing"
    monkeypatch.setenv(SHM_DIR_ENV, str(missing))
    with no_leaks():
        with pytest.raises(StreamError, match=f"'{stream_name}'.*{missing}.*{SHM_DIR_ENV}"):
            create_block(stream_name, 4096)
        with pytest.raises(StreamNotFoundError, match=f"no stream named '{stream_name}'"):
            attach(stream_name)
        assert list_streams() == []


@pytest.mark.parametrize("size", [0, -1, 2.5, True, "4096"])
def test_a_bad_block_size_is_refused(stream_name, size):
    with pytest.raises(ValueError, match=f"positive number of bytes, got {size!r}"):
        create_block(stream_name, size)


@pytest.mark.parametrize("name", ["abc\n", "abc\r", "a" * 100 + "\n"])
def test_a_name_with_a_trailing_newline_is_invalid(name):
    with pytest.raises(ValueError, match="invalid stream name"):
        block_name(name)


def test_list_streams_survives_an_entry_that_vanishes_while_it_looks(
    monkeypatch, tmp_path, stream_name
):
    # The race of a writer closing between listdir and the look at its entry, made certain:
    # listdir names a block that is no longer there.
    monkeypatch.setenv(SHM_DIR_ENV, str(tmp_path))
    real_listdir = os.listdir
    ghost = block_name(f"{stream_name}_gone")
    monkeypatch.setattr(
        os, "listdir", lambda path: real_listdir(path) + ([ghost] if path == str(tmp_path) else [])
    )
    with StreamRing(16, 2, shared=True, name=stream_name), no_leaks():
        assert list_streams() == [stream_name]
