"""Security properties of the whole package: what it exposes and what it never does with data."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pytest

from qudi.hardware.instream.stream_sharing import SharedStreamer, checked_publish_security
from qudi.util.instream import StreamRing
from qudi.util.instream.keys import new_keys
from qudi.util.instream.network import DEFAULT_ADDRESS
from qudi.util.instream.shared_block import BLOCK_PREFIX

SOURCES = sorted((Path(__file__).resolve().parents[2] / "src" / "qudi").rglob("*.py"))
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "marshal", "shelve", "cloudpickle"}
UNSAFE_BUILTINS = {"eval", "exec", "compile", "__import__"}
UNSAFE_CALLS = {"recv_pyobj", "send_pyobj", "recv_serialized", "obtain", "deliver"}


def _unsafe_uses(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in UNSAFE_MODULES:
                found.append(node.module)
        elif isinstance(node, ast.Name) and node.id in UNSAFE_BUILTINS:
            found.append(node.id)
        elif isinstance(node, ast.Attribute) and node.attr in UNSAFE_CALLS:
            found.append(node.attr)
        elif isinstance(node, ast.Constant) and node.value == "allow_pickle":
            found.append("allow_pickle")
    return [f"{path.name}:{name}" for name in found]


def test_no_module_of_the_package_deserialises_objects_or_runs_received_code():
    assert len(SOURCES) > 20  # the walk found the package
    unsafe = [use for path in SOURCES for use in _unsafe_uses(path)]
    assert unsafe == []


def test_the_check_would_see_an_unsafe_use(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import pickle\nfrom rpyc import classic\nclassic.obtain(x)\neval('1')\n")
    assert sorted(_unsafe_uses(sample)) == [
        "sample.py:eval",
        "sample.py:obtain",
        "sample.py:pickle",
    ]


def test_shared_memory_is_for_the_owner_only(stream_name):
    with StreamRing(1024, 2, shared=True, name=stream_name) as ring:
        ring.write(np.zeros((10, 2)))
        mode = os.stat(f"/dev/shm/{BLOCK_PREFIX}{stream_name}").st_mode & 0o777
        assert mode == 0o600


def test_streams_are_published_on_loopback_unless_a_config_says_otherwise():
    assert DEFAULT_ADDRESS.startswith("tcp://127.0.0.1:")
    option = SharedStreamer._publish_address
    assert option.default == DEFAULT_ADDRESS


def test_publishing_beyond_this_host_needs_keys_or_an_explicit_insecure():
    assert SharedStreamer._insecure.default is False
    assert SharedStreamer._publish_key.default is None
    assert SharedStreamer._allowed_clients.default is None
    assert checked_publish_security(DEFAULT_ADDRESS, None, None, False) is None  # loopback
    for address in ("tcp://0.0.0.0:5555", "tcp://*:5555"):
        with pytest.raises(ValueError, match=r"python -m qudi\.util\.instream\.keys new NAME"):
            checked_publish_security(address, None, None, False)
        assert checked_publish_security(address, None, None, True) is None


def test_key_files_are_made_for_the_owner_only(tmp_path):
    public, secret = new_keys("host", tmp_path / "keys")
    for path in (tmp_path / "keys", public, secret):
        assert path.stat().st_mode & 0o077 == 0
