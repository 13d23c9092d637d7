"""The LSL helpers without a network: optional pylsl, formats, clocks, gaps and dejitter."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from qudi.util.instream.lsl_support import INSTALL_HINT, channel_format_of, load_pylsl
from qudi.util.instream.lsl_timing import CAUSE_OVERFLOW, CAUSE_SILENCE, Dejitter, GapDetector
from tests.lsl.conftest import pylsl

LSL_MODULES = [
    "qudi.util.instream",
    "qudi.util.instream.lsl_support",
    "qudi.util.instream.lsl_timing",
    "qudi.util.instream.lsl_inlet",
    "qudi.util.instream.lsl_publisher",
    "qudi.hardware.instream.lsl",
    "qudi.hardware.instream.lsl_outlet",
]


def test_everything_imports_without_pylsl():
    code = (
        "import sys; sys.modules['pylsl'] = None\n"  # import pylsl now raises ImportError
        f"for name in {LSL_MODULES!r}: __import__(name)\n"
        "from qudi.util.instream.lsl_support import load_pylsl\n"
        "try:\n    load_pylsl()\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert INSTALL_HINT in out.stdout


def test_activation_without_pylsl_says_how_to_install_it(
    module_manager, monkeypatch, expected_qudi_errors
):
    monkeypatch.setitem(sys.modules, "pylsl", None)
    with pytest.raises(RuntimeError):
        module_manager.activate_module("lsl_in")
    assert INSTALL_HINT in " ".join(expected_qudi_errors())
    monkeypatch.undo()
    with pytest.raises(ImportError, match="qudi-instream"):
        monkeypatch.setitem(sys.modules, "pylsl", None)
        load_pylsl()


def test_lsl_time_is_the_host_monotonic_clock():
    for _ in range(5):
        before = time.monotonic()
        lsl = pylsl.local_clock()
        after = time.monotonic()
        assert before <= lsl <= after


@pytest.mark.parametrize(
    ("dtype", "expected", "pushed"),
    [
        ("float32", "cf_float32", "float32"),
        ("float64", "cf_double64", "float64"),
        ("int16", "cf_int16", "int16"),
        ("uint16", "cf_int32", "int32"),
        ("uint32", "cf_int64", "int64"),
        ("float16", "cf_float32", "float32"),
    ],
)
def test_dtypes_map_to_lsl_formats_that_hold_every_value(dtype, expected, pushed):
    assert channel_format_of(dtype) == (expected, np.dtype(pushed))


@pytest.mark.parametrize("dtype", ["uint64", "complex64", "bool"])
def test_dtypes_lsl_cannot_carry_are_refused_by_name(dtype):
    with pytest.raises(ValueError, match=f"dtype {dtype}"):
        channel_format_of(dtype)


def test_gaps_are_found_in_and_between_chunks_jitter_is_not():
    detector = GapDetector(1000.0, tolerance=0.002)
    rng = np.random.default_rng(1)
    k = np.arange(3000.0)
    k[1500:] += 40  # 40 samples missing before the 1501st
    times = 5.0 + k / 1000.0 + rng.uniform(-4e-4, 4e-4, len(k))  # jitter: 0.4 periods
    assert detector.check(0, times[:1000], queue_full=False) == []
    [gap] = detector.check(1000, times[1000:], queue_full=False)
    assert (gap.index, gap.lost, gap.cause) == (1500, 40, CAUSE_SILENCE)
    # a short step is jitter, unless the inlet's buffer was full: then LSL dropped samples
    later = times[-1] + np.arange(1, 11) * 1e-3 + 1.5e-3
    assert detector.check(3000, later, queue_full=False) == []
    [gap] = detector.check(3010, later[-1] + 3e-3 + np.arange(5) * 1e-3, queue_full=True)
    assert (gap.index, gap.lost, gap.cause) == (3010, 2, CAUSE_OVERFLOW)


def test_dejitter_finds_the_line_through_gaps():
    rng = np.random.default_rng(2)
    numbers = np.arange(20_000.0)
    numbers[10_000:] += 500  # a gap: the sample numbers count the missing samples
    truth = 100.0 + numbers / 1000.0 * (1 + 50e-6)  # a clock 50 ppm fast
    jittered = truth + rng.normal(0, 1e-3, len(numbers))
    dejitter = Dejitter(halftime=5_000)
    out = np.concatenate(
        [
            dejitter.smooth(n, t)
            for n, t in zip(np.array_split(numbers, 40), np.array_split(jittered, 40), strict=True)
        ]
    )
    late = slice(5_000, None)  # once the fit has settled
    assert np.max(np.abs(out[late] - truth[late])) < 2e-4  # 1 ms jitter down to < 0.2 ms
    assert np.std(out[late] - truth[late]) < np.std(jittered[late] - truth[late]) / 5
