"""The source tree keeps its layers: checked on ``src/``, and shown to fail on planted violations.

Each rule is run on the real tree (must be clean) and on a copy of the real tree with one
violation written into a real file (must be reported), so a check that can never fail is caught.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests import layering

SRC = Path(__file__).resolve().parents[1] / "src"
CLASS_LINE_LIMIT = 400


def _checks(tree: dict[str, layering.Module]) -> dict[str, list]:
    return {
        "upward imports": layering.upward_imports(tree),
        "Qt or qudi.core in the core": layering.forbidden_imports(
            tree, "qudi.util.instream", layering.CORE_FORBIDDEN
        ),
        "transports in the interface": layering.forbidden_imports(
            tree, "qudi.interface", layering.INTERFACE_FORBIDDEN
        ),
        "underscore names across modules": layering.private_name_imports(tree),
        "import circles": layering.import_cycles(tree),
    }


@pytest.mark.parametrize("rule", list(_checks({})))
def test_src_keeps_the_rule(rule):
    """No violation of ``rule`` anywhere in ``src/``."""
    assert _checks(layering.load_tree(SRC))[rule] == []


def test_no_class_in_src_is_longer_than_the_limit():
    assert layering.long_classes(SRC, CLASS_LINE_LIMIT) == []


def test_every_source_file_says_its_job_in_a_docstring():
    assert layering.files_without_docstring(SRC) == []


PLANTED = {
    # rule: (file in src to append to, the line that breaks the rule)
    "upward imports": (
        "qudi/util/instream/arrays.py",
        "from qudi.logic.instream import time_series_reader_logic\n",
    ),
    "Qt or qudi.core in the core": (
        "qudi/util/instream/errors.py",
        "def _late():\n    from PySide6 import QtCore\n",
    ),
    "transports in the interface": (
        "qudi/interface/instream_interface.py",
        "import zmq\n",
    ),
    "underscore names across modules": (
        "qudi/util/instream/errors.py",
        "from qudi.util.instream import arrays\n\ndef _peek():\n    return arrays._hidden\n",
    ),
    "import circles": (
        "qudi/util/instream/errors.py",
        "def _late():\n    from qudi.util.instream import hub\n",
    ),
}


@pytest.mark.parametrize("rule", sorted(PLANTED))
def test_a_planted_violation_is_reported(rule, tmp_path):
    """Copy ``src/``, break one rule in one real file, and the check for that rule reports it."""
    tree_root = tmp_path / "src"
    shutil.copytree(SRC, tree_root, ignore=shutil.ignore_patterns("__pycache__"))
    relative, line = PLANTED[rule]
    with open(tree_root / relative, "a") as file:
        file.write("\n" + line)
    found = _checks(layering.load_tree(tree_root))[rule]
    assert found, f"planting {line!r} in {relative} was not reported as {rule}"


def test_type_checking_imports_do_not_count(tmp_path):
    """Annotation-only imports (``if TYPE_CHECKING:``) make no circle."""
    package = tmp_path / "qudi" / "util" / "instream"
    package.mkdir(parents=True)
    (package / "a.py").write_text('"""a"""\nfrom qudi.util.instream import b\n')
    (package / "b.py").write_text(
        '"""b"""\nfrom typing import TYPE_CHECKING\n'
        "if TYPE_CHECKING:\n    from qudi.util.instream import a\n"
    )
    assert layering.import_cycles(layering.load_tree(tmp_path)) == []
    (package / "b.py").write_text('"""b"""\nfrom qudi.util.instream import a\n')
    assert layering.import_cycles(layering.load_tree(tmp_path)) == [
        ["qudi.util.instream.a", "qudi.util.instream.b"]
    ]


def test_a_long_class_and_a_missing_docstring_are_reported(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(CLASS_LINE_LIMIT))
    (tmp_path / "long.py").write_text(f"class Long:\n{body}\n")
    assert layering.long_classes(tmp_path, CLASS_LINE_LIMIT) == ["long.py: Long has 401 lines"]
    assert layering.files_without_docstring(tmp_path) == ["long.py"]
