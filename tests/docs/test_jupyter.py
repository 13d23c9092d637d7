"""docs/jupyter.md, every block as written and in order, in real Jupyter kernels (nbclient):
qudi's own kernel (installed with ``qudi-install-kernel``, kernel name ``qudi``) and a plain
Python kernel over rpyc, against qudi started with the README's headless command on free
ports. Then what the page says about qudi's kernel and about joining a busy stream."""

from __future__ import annotations

import time

import numpy as np
import pytest

from qudi.util.instream import StreamBusyError, StreamOverrunError
from qudi.util.instream.sharing import RemoteHub
from tests.docs.kernel import install_qudi_kernel, printed, run_in_kernel
from tests.docs.markdown import ROOT, code_blocks
from tests.docs.readme_demo import (
    ReadmeClone,
    active_modules,
    headless_block,
    stop_block,
    wait_until,
)

PAGE = ROOT / "docs" / "jupyter.md"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """qudi as the README starts it without a screen, streaming, with qudi's kernel
    installed as the page says; stopped the README's way at the end."""
    clone = ReadmeClone(tmp_path_factory.mktemp("jupyter"))
    try:
        clone.start(headless_block())
        connection = clone.connect()
        modules = active_modules(connection, ["time_series_logic1", "time_series_logic2"])
        logics = [modules["time_series_logic1"], modules["time_series_logic2"]]
        wait_until(lambda: min(len(lg.trace_data[0]) for lg in logics) > 5, 30, "the stream")
        install_qudi_kernel(clone.environment())
        yield clone, connection
        connection.close()
        stopped = clone.run(stop_block())
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert clone.wait() == 0
    finally:
        clone.close()


def page_cells() -> list[str]:
    blocks = [b for b in code_blocks(PAGE, "python") if b.not_run is None]
    assert len(blocks) >= 4, "docs/jupyter.md has fewer examples than this test expects"
    return [b.code for b in blocks]


@pytest.mark.parametrize("kernel", ["qudi", "python3"])
def test_every_block_of_the_page_runs_in_order(kernel, demo, monkeypatch):
    clone, connection = demo
    notebook = run_in_kernel(page_cells(), kernel, clone.environment(), clone.root, monkeypatch)
    outputs = [printed(cell) for cell in notebook.cells]
    modules = connection.root.get_namespace_dict()
    assert any("('APD', 'analog 1')" in text for text in outputs), outputs  # the demo's stream
    # the refused change names the consumers that stream: the demo's buffers
    assert any("stream_buffer1" in text and "stream_buffer2" in text for text in outputs), outputs
    assert [modules[f"time_series_logic{i}"].module_state() for i in (1, 2)] == ["locked"] * 2
    assert modules["instream_dummy"].sample_rate == 50.0  # the page changed nothing


def test_in_qudi_kernel_a_module_appears_from_the_cell_after_its_activation(demo, monkeypatch):
    clone, connection = demo
    cells = [
        'qudi.module_manager.deactivate_module("time_series_logic2")',
        # the page's way in the cell that activates it; the name itself comes a cell later
        'assert "time_series_logic2" not in globals()\n'
        'qudi.module_manager.activate_module("time_series_logic2")\n'
        'logic = qudi.module_manager["time_series_logic2"].instance\n'
        'assert logic.module_state() == "locked"\n'
        'assert "time_series_logic2" not in globals()',
        'assert time_series_logic2.module_state() == "locked"',
    ]
    run_in_kernel(cells, "qudi", clone.environment(), clone.root, monkeypatch)
    modules = connection.root.get_namespace_dict()
    assert modules["time_series_logic2"].module_state() == "locked"


def test_a_refused_configure_leaves_nothing_joined(demo):
    """Run again, a notebook cell whose change was refused is refused again: the refusal
    left nothing joined (not "already has a consumer named 'my notebook'")."""
    _, connection = demo
    cell = (  # the page's first version of this example, run twice as a notebook cell
        'hub = RemoteHub.join(instream_dummy, "my notebook")\n'
        'hub.configure(["APD", "analog 1"], "CONTINUOUS", 2**16, 100_000.0)\n'
    )
    namespace = {
        "RemoteHub": RemoteHub,
        "instream_dummy": connection.root.get_namespace_dict()["instream_dummy"],
    }
    try:
        for _ in range(2):
            try:
                exec(cell, namespace)
            except StreamBusyError:
                continue  # refused, as it must be while the demo's logics stream
            pytest.fail("the demo's logics stream: the change must be refused")
    finally:
        if "hub" in namespace:
            namespace["hub"].close()


def test_a_refusal_through_remote_hub_names_the_running_readers(demo):
    _, connection = demo
    hub = RemoteHub.join(connection.root.get_namespace_dict()["instream_dummy"], "busy check")
    try:
        with pytest.raises(StreamBusyError) as refusal:
            hub.configure(["APD", "analog 1"], "CONTINUOUS", 2**16, 100_000.0)
        assert {"stream_buffer1", "stream_buffer2"} <= set(refusal.value.running_readers)
    finally:
        hub.close()


def test_a_blocking_read_of_the_size_the_page_once_used_is_possible(demo):
    """With 2**16 at 100 kHz the ring holds 100 000 samples: a blocking read of 100 000 must
    either succeed or be refused at once, consuming nothing and saying what would work."""
    _, connection = demo
    modules = connection.root.get_namespace_dict()
    logics = [modules["time_series_logic1"], modules["time_series_logic2"]]
    for logic in logics:
        logic.stop_reading()
    hub = RemoteHub.join(modules["instream_dummy"], "big read")
    try:
        hub.configure(["APD", "analog 1"], "CONTINUOUS", 2**16, 100_000.0)
        reader = hub.open_reader("big read")
        data = np.empty((100_000, 2))
        reader.start()
        started, position = time.monotonic(), reader.position
        try:
            reader.read_into(data, timeout=10)
        except StreamOverrunError:
            raise
        except Exception as refusal:  # refused up front, saying what would work: also fine
            assert time.monotonic() - started < 0.5, f"not refused up front: {refusal!r}"
            assert reader.position == position, f"consumed before refusing: {refusal!r}"
            assert "100000" in str(refusal).replace(" ", ""), f"no count: {refusal!r}"
            return
        finally:
            reader.stop()
        np.testing.assert_array_less(np.abs(data[:, 1]), 1.0 + 1e-12)
    finally:
        hub.close()
        for logic in logics:  # the demo as it was
            logic.start_reading()
        wait_until(lambda: all(lg.module_state() == "locked" for lg in logics), 10, "logics")
