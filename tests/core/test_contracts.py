"""The written contracts hold: every reader and hub kind has the shape its Protocol names, and
the parts cross each other's seams only through those names (checked on the source, too)."""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import pytest

from qudi.util.instream import HubReader, RingReader, StreamHub, StreamSource, contracts
from qudi.util.instream.contracts import (
    JoinedHub,
    ReaderHost,
    StreamCursor,
    StreamReader,
)
from qudi.util.instream.network import StreamSubscriber
from qudi.util.instream.sharing import LocalHub, RemoteHub, SubscribedHub, SubscribedReader

SRC = Path(__file__).resolve().parents[2] / "src" / "qudi"
CORE = SRC / "util" / "instream"


def protocol_members(protocol: type) -> dict[str, object]:
    """Name -> the protocol's declaration (a function, a property or an annotation)."""
    members: dict[str, object] = {}
    for klass in reversed(protocol.__mro__):
        if klass in (object, typing.Protocol, typing.Generic) or not getattr(
            klass, "_is_protocol", False
        ):
            continue
        for name in getattr(klass, "__annotations__", {}):
            members[name] = "attribute"
        for name, value in vars(klass).items():
            if not name.startswith("_"):
                members[name] = value
    return members


_MISSING = object()


def shape_mismatches(klass: type, protocol: type) -> list[str]:
    """What ``klass`` lacks of ``protocol``: missing members and methods whose parameters
    do not take the protocol's (by name and kind)."""
    problems = []
    for name, declared in protocol_members(protocol).items():
        if declared == "attribute":
            if not hasattr(klass, name) and not _sets_in_init(klass, name):
                problems.append(f"{name}: missing")
            continue
        found = inspect.getattr_static(klass, name, _MISSING)
        if (
            isinstance(declared, property)
            and not callable(found)
            and (found is not _MISSING or _sets_in_init(klass, name))
        ):
            continue  # a read-only member: a property, a class attribute or one set in __init__
        if found is _MISSING:
            problems.append(f"{name}: missing")
        elif isinstance(declared, property) != isinstance(found, property):
            problems.append(
                f"{name}: {'a property' if isinstance(declared, property) else 'a method'} expected"
            )
        elif inspect.isfunction(declared):
            wanted = list(inspect.signature(declared).parameters.values())[1:]
            given = inspect.signature(found).parameters
            for parameter in wanted:
                match = given.get(parameter.name)
                if match is None or match.kind != parameter.kind:
                    problems.append(f"{name}: no parameter {parameter}")
    return problems


def _sets_in_init(klass: type, name: str) -> bool:
    for base in klass.__mro__:
        init = vars(base).get("__init__")
        if inspect.isfunction(init) and f"self.{name} =" in inspect.getsource(init):
            return True
    return False


CONFORMING = [
    (RingReader, StreamCursor),
    (HubReader, StreamCursor),
    (StreamSubscriber, StreamCursor),
    (SubscribedReader, StreamCursor),
    (HubReader, StreamReader),
    (SubscribedReader, StreamReader),
    (StreamHub, ReaderHost),
    (RemoteHub, ReaderHost),
    (LocalHub, JoinedHub),
    (RemoteHub, JoinedHub),
    (SubscribedHub, JoinedHub),
]


@pytest.mark.parametrize(
    ("klass", "protocol"), CONFORMING, ids=[f"{k.__name__}-{p.__name__}" for k, p in CONFORMING]
)
def test_every_kind_has_the_shape_of_its_contract(klass, protocol):
    assert shape_mismatches(klass, protocol) == []


def test_the_shape_check_sees_what_is_missing():
    class HalfAReader:
        name = "half"
        allow_overwrite = False

        @property
        def running(self) -> bool:
            return False

        def read_into(self, out, count=None, *, timeout=None, timestamps=None): ...

    problems = shape_mismatches(HalfAReader, StreamReader)
    assert "available: missing" in problems and "start: missing" in problems
    assert any(p.startswith("read_into: no parameter n") for p in problems)


def test_stream_source_is_still_importable_from_the_hub():
    from qudi.util.instream.hub import StreamSource as FromHub

    assert FromHub is StreamSource is contracts.StreamSource


# ------------------------------------------------------------------- seams in the source
def calls_on(tree: ast.AST, owner: str) -> set[str]:
    """Names called or read as ``self.<owner>.<name>`` in ``tree``."""
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == owner
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "self"
    }


def test_a_hub_reader_reaches_its_host_only_through_the_reader_host_contract():
    tree = ast.parse((CORE / "hub.py").read_text())
    (hub_reader,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "HubReader"]
    used = calls_on(hub_reader, "_host")
    assert used and used <= set(protocol_members(ReaderHost))


def private_writes_on_others(path: Path) -> list[str]:
    """``x._name = ...`` (or ``+=``) where ``x`` is not ``self`` or ``cls``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        else:
            continue
        for target in targets:
            for sub in ast.walk(target):
                if (
                    isinstance(sub, ast.Attribute)
                    and sub.attr.startswith("_")
                    and not sub.attr.startswith("__")
                    and not (isinstance(sub.value, ast.Name) and sub.value.id in ("self", "cls"))
                ):
                    found.append(f"{path.name}:{sub.lineno}: {ast.unparse(sub)}")
    return found


SEAM_FILES = sorted(CORE.rglob("*.py")) + [SRC / "hardware" / "instream" / "buffer.py"]


def test_no_part_writes_another_objects_private_attributes():
    assert [w for path in SEAM_FILES for w in private_writes_on_others(path)] == []


def test_the_private_write_check_would_see_one(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("def reset(reader):\n    reader._position = 0\n    self_ok = 1\n")
    assert private_writes_on_others(planted) == ["planted.py:2: reader._position"]


def test_no_part_takes_another_objects_lock_or_reads_through_its_private_parts():
    """``hub._lock`` or ``self._reader._subscriber``: a private name of something else."""
    offenders = []
    for path in SEAM_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Attribute)
                and node.value.attr.startswith("_")
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "self"
            ):
                offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "_lock"
                and not (isinstance(node.value, ast.Name) and node.value.id == "self")
            ):
                offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []
