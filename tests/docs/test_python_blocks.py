"""Every ```python block of README.md and docs/*.md runs as written, each in a Python process
of its own, as a reader's script would.

A block that is not meant to run is marked in its page (``<!-- not run: reason -->`` on the
line before it) and is reported as skipped with that reason. docs/jupyter.md runs in Jupyter
kernels against a running qudi (test_jupyter.py), and so does a block marked
``<!-- in qudi's kernel: cfg/<config> -->``: the test of ``IN_QUDI_KERNEL`` for that config runs
it in qudi's kernel against a qudi running that config. A block that needs something running
elsewhere while it runs (the stream another process holds open) gets it from ``CONTEXTS``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap

import pytest

from tests.docs.markdown import PAGES, ROOT, Block, code_blocks

IN_JUPYTER = {"docs/jupyter.md"}  # run by test_jupyter.py
IN_QUDI_KERNEL = {  # a config blocks are marked to run against: the test that runs them there
    "cfg/instream_markers.cfg": "tests/qudi/test_markers_remote.py",
    "cfg/instream_kinds.cfg": "tests/qudi/test_kinds_kernel.py",
}


@contextlib.contextmanager
def stream_held_open_elsewhere(tmp_path):
    """The stream the README's block above makes ('my_stream': a simulated card, APD counts
    and a sine at 100 kHz), held open and running in another process."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys
                from qudi.util.instream import StreamHub
                from qudi.util.instream.simulated import SimulatedSource

                source = SimulatedSource(["APD", "analog 1"], ["counts", "sine"], sample_rate=100e3)
                with StreamHub(source, name="my_stream", max_poll_rate=30.0) as hub:
                    reader = hub.open_reader("analysis", allow_overwrite=True)
                    reader.start()
                    print("streaming", flush=True)
                    sys.stdin.read()  # until the test closes stdin
                """
            ),
        ],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "streaming", "the stream did not start"
        yield
    finally:
        holder.stdin.close()
        try:
            holder.wait(30)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait(30)


# (page, the block's first line): what must run elsewhere while the block runs
CONTEXTS = {
    ("README.md", "from qudi.util.instream import attach, list_streams"): (
        stream_held_open_elsewhere
    ),
}

# blocks that cannot run as written and are not marked yet in pages this suite does not own:
# each must get `<!-- not run: ... -->` in its page (then remove it here)
UNMARKED: dict[tuple[str, str], str] = {}


def key(block: Block) -> tuple[str, str]:
    return str(block.page.relative_to(ROOT)), block.first_line


def python_blocks() -> list[Block]:
    return [
        block
        for page in PAGES
        if str(page.relative_to(ROOT)) not in IN_JUPYTER
        for block in code_blocks(page, "python")
        if block.in_qudi is None
    ]


def cases():
    for block in python_blocks():
        marks = []
        if block.not_run is not None:
            marks.append(pytest.mark.skip(reason=f"{block.id}: not run: {block.not_run}"))
        elif key(block) in UNMARKED:
            marks.append(
                pytest.mark.xfail(
                    strict=True,
                    reason=f"{block.id} cannot run as written ({UNMARKED[key(block)]}): the "
                    "page needs <!-- not run: ... --> before it",
                )
            )
        yield pytest.param(block, id=block.id, marks=marks)


def test_every_context_and_unmarked_entry_names_a_block_of_the_pages():
    keys = {key(block) for block in python_blocks() if block.not_run is None}
    assert set(CONTEXTS) <= keys, f"stale CONTEXTS: {set(CONTEXTS) - keys}"
    assert set(UNMARKED) <= keys, f"marked or gone, remove from UNMARKED: {set(UNMARKED) - keys}"


def test_every_block_for_qudis_kernel_names_a_config_a_test_runs_it_against():
    marked = {b.in_qudi for page in PAGES for b in code_blocks(page, "python") if b.in_qudi}
    assert marked <= set(IN_QUDI_KERNEL), f"no test runs these: {marked - set(IN_QUDI_KERNEL)}"
    for config, test in IN_QUDI_KERNEL.items():
        assert (ROOT / config).is_file() and (ROOT / test).is_file(), (config, test)
        assert f"qudi_kernel_blocks({config!r})" in (ROOT / test).read_text().replace('"', "'")


@pytest.mark.parametrize("block", list(cases()))
def test_python_block_runs_as_written(block, tmp_path):
    context = CONTEXTS.get(key(block), lambda _: contextlib.nullcontext())
    with context(tmp_path):
        run = subprocess.run(
            [sys.executable, "-c", block.code],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 0, f"{block.id} failed:\n{block.code}\n{run.stderr[-4000:]}"
