"""Fixtures of the multi-host tests: namespaces (skipped, with the reason, where they cannot be
made), key files for a server and its subscribers, and whether netem can shape a link."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from netns import Star, namespaces_missing, netem_missing  # noqa: E402

from qudi.util.instream.keys import new_keys  # noqa: E402

_MISSING = namespaces_missing()


@pytest.fixture
def star_factory():
    """Make a :class:`Star` of namespaces; every one is deleted at teardown, pass or fail."""
    if _MISSING is not None:
        pytest.skip(f"multi-host tests need network namespaces: {_MISSING}")
    made: list[Star] = []

    def make(subscribers: int) -> Star:
        star = Star(subscribers)
        made.append(star)
        return star

    yield make
    for star in made:
        star.close()


@pytest.fixture(scope="session")
def netem_reason() -> str | None:
    """None where netem works, else why not (tests then shape links with tbf only)."""
    return None if _MISSING is not None else netem_missing()


@pytest.fixture
def key_folder(tmp_path) -> Path:
    """server.key(_secret), sub1..sub8.key(_secret), and allowed/ with every subscriber."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    new_keys("server", tmp_path)
    for k in range(1, 9):
        public, _ = new_keys(f"sub{k}", tmp_path)
        shutil.copy(public, allowed)
    return tmp_path
