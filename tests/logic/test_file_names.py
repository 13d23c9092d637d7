"""Snapshot and recording file names: a tag never leaves the directory or replaces a file."""

from __future__ import annotations

import datetime
import os

import pytest

from qudi.logic.instream.file_names import MAX_TAG_CHARACTERS, nametag, unused_path

WHEN = datetime.datetime(2024, 5, 1, 14, 3, 7)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("", "time_series"),
        ("first try", "time_series_first_try"),
        ("../../escape", "time_series_.._.._escape"),
        ("sub/dir", "time_series_sub_dir"),
        ("a\\b", "time_series_a_b"),
        ("nul\x00byte", "time_series_nul_byte"),
        ("tab\there", "time_series_tab_here"),
    ],
)
def test_tags_are_made_safe(tag, expected):
    assert nametag(tag) == expected


def test_slashes_keep_the_timestamp_and_never_overwrite(tmp_path):
    # hostile finding D9: "../../escape" twice saved escape.dat twice, the second over the first
    first = unused_path(str(tmp_path), WHEN, nametag("../../escape"), ".dat", reserve=True)
    second = unused_path(str(tmp_path), WHEN, nametag("../../escape"), ".dat", reserve=True)
    assert first != second
    for path in (first, second):
        assert os.path.dirname(path) == str(tmp_path) and os.path.exists(path)
        assert os.path.basename(path).startswith("20240501-1403-07_time_series_")
    assert second.endswith("_1.dat")


def test_nul_and_over_long_tags_give_names_the_file_system_takes(tmp_path):
    long_tag = "x" * 300  # raw OSError 36 (name too long) before
    for tag in (long_tag, "a\x00b", "é" * 300):
        path = unused_path(str(tmp_path), WHEN, nametag(tag), ".dat", reserve=True)
        assert os.path.exists(path)
        assert len(os.path.basename(path).encode()) < 255
    assert nametag(long_tag) == "time_series_" + "x" * MAX_TAG_CHARACTERS


def test_a_companion_file_makes_a_name_taken(tmp_path):
    stem = os.path.join(str(tmp_path), "20240501-1403-07_time_series")
    with open(stem + ".png", "w"):
        pass
    path = unused_path(str(tmp_path), WHEN, "time_series", ".dat", companions=(".png",))
    assert path == stem + "_1.dat"


def test_without_reserving_nothing_is_created(tmp_path):
    path = unused_path(str(tmp_path), WHEN, "time_series", ".h5")
    assert not os.path.exists(path) and path.endswith("20240501-1403-07_time_series.h5")
