"""README's performance figures are the report's: one run writes both (benchmarks/run_all.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import run_all  # noqa: E402


def _readme_headlines(text: str) -> list[str]:
    block = text.split(run_all.README_BEGIN, 1)[1].split(run_all.README_END, 1)[0]
    return block.strip().splitlines()


def test_readme_shows_the_headlines_of_the_performance_report():
    report = run_all.report_headlines((ROOT / "docs" / "performance.md").read_text())
    assert _readme_headlines((ROOT / "README.md").read_text()) == report


def test_run_all_rewrites_the_readme_block_and_nothing_else(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{run_all.README_BEGIN}\n| old |\n{run_all.README_END}\noutro\n")
    run_all.update_readme(["| benchmark | result |", "| --- | --- |", "| `x.py` | 2x |"], readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\noutro\n")
    assert _readme_headlines(text) == ["| benchmark | result |", "| --- | --- |", "| `x.py` | 2x |"]


def test_a_readme_without_the_markers_is_refused_unchanged(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    with pytest.raises(ValueError, match="lacks the lines"):
        run_all.update_readme(["| a |"], readme)
    assert readme.read_text() == "no markers here\n"
