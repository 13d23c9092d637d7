"""Fuzzing the shared-memory block layer with whatever a local user can plant under the prefix.

Each example fills a block directory of its own (``QUDI_INSTREAM_SHM_DIR``) with random
entries: names valid and not, regular files of random sizes, modes and owners, valid ring
blocks, FIFOs, directories, sockets, devices and symbolic links. Then ``list_streams`` must
list exactly the names a model of the rules accepts, ``attach`` must accept those and refuse
every other one with an error of the package (never hang, never a raw OSError), a writer must
be refused any name that is taken without touching what holds it, and nothing may leak. A
second test creates blocks of random sizes in a small tmpfs: each is either reserved whole
or refused with nothing left behind.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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

IS_ROOT = os.geteuid() == 0
OTHER_UID = 65534
pytestmark = [
    pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux"),
    pytest.mark.timeout(90),  # a hang fails the test instead of the whole run
]
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KINDS = [
    "file",
    "ring",
    "fifo",
    "directory",
    "socket",
    "link to file",
    "link to ring",
    "link to fifo",
    "link to directory",
    "dangling link",
    "link to /dev/zero",
] + (["character device"] if IS_ROOT else [])


@dataclass(frozen=True)
class Entry:
    name: str  # the part after the prefix (or the whole entry name without it)
    prefixed: bool
    kind: str
    content: bytes
    size: int | None  # extend (sparse) to this size
    mode: int
    other_owner: bool

    @property
    def filename(self) -> str:
        return (BLOCK_PREFIX if self.prefixed else "") + self.name

    @property
    def valid_name(self) -> bool:
        try:
            block_name(self.name)
        except ValueError:
            return False
        return self.prefixed

    @property
    def accepted(self) -> bool:
        """What the rules say: a non-empty regular file of ours that others cannot write."""
        if not self.valid_name or self.kind not in ("file", "ring") or self.other_owner:
            return False
        readable = IS_ROOT or self.mode & 0o400
        return bool(readable) and not self.mode & 0o022 and self.final_size > 0

    @property
    def final_size(self) -> int:
        base = len(ring_image()) if self.kind == "ring" else len(self.content)
        return base if self.size is None else self.size


@functools.cache
def ring_image() -> bytes:
    """The bytes of a valid block: a ring of 8 x 2 int16 holding 0 .. 9."""
    with tempfile.TemporaryDirectory(dir="/dev/shm") as directory:
        previous = os.environ.get(SHM_DIR_ENV)
        os.environ[SHM_DIR_ENV] = directory
        try:
            with StreamRing(8, 2, np.int16, shared=True, name="image") as ring:
                ring.write(np.arange(10, dtype=np.int16).reshape(5, 2))
                return bytes(ring._buf)
        finally:
            if previous is None:
                del os.environ[SHM_DIR_ENV]
            else:
                os.environ[SHM_DIR_ENV] = previous


valid_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,30}", fullmatch=True)
any_names = st.text(
    st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), max_size=40
)
entries = st.builds(
    Entry,
    name=st.one_of(valid_names, valid_names, valid_names, any_names),
    prefixed=st.sampled_from([True, True, True, True, False]),
    kind=st.sampled_from(["file", "ring"] * 4 + KINDS),
    content=st.binary(max_size=300),
    size=st.none() | st.integers(0, 2**36),
    mode=st.one_of(st.sampled_from([0o600, 0o400, 0o644]), st.integers(0, 0o7777)),
    other_owner=st.sampled_from([False, False, False, True]) if IS_ROOT else st.just(False),
).filter(lambda e: e.filename not in ("", ".", "..") and len(e.filename.encode()) < 250)


def _plant(directory: str, outside: str, entry: Entry) -> None:
    path = os.path.join(directory, entry.filename)
    kind = entry.kind
    if kind in ("file", "ring"):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, ring_image() if kind == "ring" else entry.content)
            if entry.size is not None:
                os.ftruncate(fd, entry.size)
            if entry.other_owner:
                os.fchown(fd, OTHER_UID, OTHER_UID)
            os.fchmod(fd, entry.mode)
        finally:
            os.close(fd)
    elif kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "directory":
        os.mkdir(path, 0o700)
    elif kind == "socket":
        os.mknod(path, 0o600 | stat.S_IFSOCK)
    elif kind == "character device":
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null
    else:
        target = {
            "link to file": "file",
            "link to ring": "ring",
            "link to fifo": "fifo",
            "link to directory": ".",
            "dangling link": "nothing here",
        }.get(kind, "/dev/zero")
        os.symlink(os.path.join(outside, target), path)
    if entry.other_owner and kind not in ("file", "ring"):
        os.lchown(path, OTHER_UID, OTHER_UID)


def _empty(directory: str) -> None:
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def _fds_and_maps() -> tuple[set[str], list[str]]:
    with open("/proc/self/maps") as maps:
        mapped = [line for line in maps if BLOCK_PREFIX in line]
    return set(os.listdir("/proc/self/fd")), mapped


def _identity(path: str) -> tuple:
    found = os.lstat(path)
    return found.st_ino, found.st_mode, found.st_uid, found.st_size, found.st_mtime_ns


@pytest.fixture
def planting_ground(monkeypatch) -> Iterator[tuple[str, str]]:
    """``(block directory, a directory outside it with link targets)``, both removed after."""
    base = tempfile.mkdtemp(
        prefix="qudi_fuzz_", dir="/dev/shm" if os.path.isdir("/dev/shm") else None
    )
    directory, outside = os.path.join(base, "blocks"), os.path.join(base, "outside")
    os.mkdir(directory)
    os.mkdir(outside)
    with open(os.path.join(outside, "file"), "wb") as file:
        file.write(b"some bytes")
    with open(os.path.join(outside, "ring"), "wb") as file:
        file.write(ring_image())
    os.chmod(os.path.join(outside, "ring"), 0o600)
    os.mkfifo(os.path.join(outside, "fifo"))
    monkeypatch.setenv(SHM_DIR_ENV, directory)
    try:
        yield directory, outside
    finally:
        shutil.rmtree(base)


@FUZZ
@given(planted=st.lists(entries, max_size=8, unique_by=lambda e: e.filename))
def test_planted_entries_never_hang_crash_or_fool_the_block_layer(planting_ground, planted):
    directory, outside = planting_ground
    before = _fds_and_maps()
    try:
        for entry in planted:
            _plant(directory, outside, entry)
        assert list_streams() == sorted(e.name for e in planted if e.accepted)
        for entry in planted:
            if not entry.valid_name:
                continue
            if entry.accepted:
                block = AttachedBlock(entry.name)
                assert block.size == entry.final_size
                block.close()
                if entry.kind == "ring" and entry.final_size >= len(ring_image()):
                    ring = attach(entry.name)
                    assert ring.reader("fuzz").latest(5)[:, 0].tolist() == [0, 2, 4, 6, 8]
                    ring.close()
                else:  # garbage, or a ring cut short: refused by the ring's own checks
                    with pytest.raises(StreamFormatError):
                        attach(entry.name)
            else:
                with pytest.raises(StreamFormatError, match=f"stream '{entry.name}'"):
                    attach(entry.name)
            path = os.path.join(directory, entry.filename)
            held = _identity(path)
            with pytest.raises(StreamError, match=f"'{entry.name}'.*already exists"):
                create_block(entry.name, 4096)
            assert _identity(path) == held  # the refused writer changed nothing
        fresh = "fresh-stream"
        if all(e.filename != block_name(fresh) for e in planted):
            with pytest.raises(StreamNotFoundError, match=f"no stream named '{fresh}'"):
                attach(fresh)
            block = create_block(fresh, 4096)  # a writer still works among hostile neighbours
            assert fresh in list_streams()
            block.close()
            block.unlink()
            assert fresh not in list_streams()
        assert _fds_and_maps() == before
    finally:
        _empty(directory)


@pytest.fixture
def small_tmpfs(tmp_path, monkeypatch) -> Iterator[str]:
    if not IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    directory = tmp_path / "shm"
    directory.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(directory)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    monkeypatch.setenv(SHM_DIR_ENV, str(directory))
    try:
        yield str(directory)
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def _used(directory: str) -> int:
    stats = os.statvfs(directory)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


@FUZZ
@given(
    steps=st.lists(
        st.one_of(st.integers(1, 5 * 2**20), st.just("close oldest"), st.just("close newest")),
        max_size=12,
    )
)
def test_blocks_in_a_small_tmpfs_are_reserved_whole_or_refused_without_a_trace(small_tmpfs, steps):
    before = _fds_and_maps()
    live = []
    try:
        for number, step in enumerate(steps):
            if isinstance(step, str):
                if live:
                    block = live.pop(0 if step == "close oldest" else -1)
                    block.close()
                    block.unlink()
                continue
            entries_before, used_before = sorted(os.listdir(small_tmpfs)), _used(small_tmpfs)
            try:
                block = create_block(f"fuzz-{number}", step)
            except StreamCapacityError as refused:
                assert refused.nbytes == step and f"stream 'fuzz-{number}'" in str(refused)
                assert sorted(os.listdir(small_tmpfs)) == entries_before
                assert _used(small_tmpfs) == used_before
            else:
                live.append(block)
                assert os.stat(block.path).st_blocks * 512 >= step  # every page is reserved
        assert sorted(list_streams()) == sorted(b.name[len(BLOCK_PREFIX) :] for b in live)
    finally:
        for block in live:
            block.close()
            block.unlink()
    assert os.listdir(small_tmpfs) == [] and _used(small_tmpfs) == 0
    assert _fds_and_maps() == before
