"""The fenced code blocks of the project's Markdown pages, as a reader copies them.

A block that is not meant to run says so in the page, on the line before its fence:

    <!-- not run: why (e.g. it needs a card, or another host) -->

and a block that runs in qudi's Jupyter kernel, against qudi running a config of cfg/, says
which (a test of tests/qudi/ runs it there, not tests/docs/test_python_blocks.py):

    <!-- in qudi's kernel: cfg/instream_markers.cfg -->
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(?P<indent> *)```(?P<language>[\w+-]*)\s*$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not run:\s*(?P<reason>.*?)\s*-->\s*$")
_IN_QUDI = re.compile(r"^\s*<!--\s*in qudi's kernel:\s*(?P<config>\S+)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, counted from 1
    language: str
    code: str  # without the indentation of the fence (blocks inside list items)
    not_run: str | None  # the reason the page gives, if it marks the block
    in_qudi: str | None = None  # the config of the qudi whose kernel runs it, if marked

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def first_line(self) -> str:
        return next((line for line in self.code.splitlines() if line.strip()), "")


def code_blocks(page: Path, language: str | None = None) -> list[Block]:
    """The page's fenced blocks in order (only those of ``language`` if given)."""
    lines = page.read_text().splitlines()
    blocks, index = [], 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        indent = fence["indent"]
        start, body = index, []
        index += 1
        while index < len(lines) and lines[index].rstrip() != f"{indent}```":
            line = lines[index]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            index += 1
        if index == len(lines):
            raise ValueError(f"{page}:{start + 1}: code block without a closing fence")
        index += 1
        previous = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        marker, in_qudi = _NOT_RUN.match(previous), _IN_QUDI.match(previous)
        blocks.append(
            Block(
                page=page,
                line=start + 1,
                language=fence["language"],
                code="\n".join(body) + "\n",
                not_run=marker["reason"] if marker else None,
                in_qudi=in_qudi["config"] if in_qudi else None,
            )
        )
    return [b for b in blocks if language is None or b.language == language]


def block_containing(page: Path, text: str, language: str | None = None) -> Block:
    """The one block of ``page`` whose code contains ``text``."""
    found = [b for b in code_blocks(page, language) if text in b.code]
    assert len(found) == 1, f"{page.name}: {len(found)} blocks contain {text!r}, expected 1"
    return found[0]


def qudi_kernel_blocks(config: str) -> list[Block]:
    """The python blocks of every page marked to run in qudi's kernel against ``config``
    (``cfg/...``), in page order."""
    return [b for page in PAGES for b in code_blocks(page, "python") if b.in_qudi == config]
