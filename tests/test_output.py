"""The output root is checked before anything runs (`harness.output`); the mounts that make it
read-only or full are in tests/test_bad_input.py."""

from __future__ import annotations

import errno

import pytest

from harness.errors import OutputError
from harness.output import check_output_root, is_disk_error, write_failure


def test_a_root_that_does_not_exist_yet_is_fine_and_not_made(tmp_path):
    check_output_root(tmp_path / "a" / "b" / "results", "demo")
    assert list(tmp_path.iterdir()) == []  # the probe file is gone too


@pytest.mark.parametrize(
    "blocker, root",
    [("results", "results"), ("results/demo", "results"), ("results", "results/deeper")],
    ids=["the root", "the run's name under it", "a folder above it"],
)
def test_a_file_in_the_way(tmp_path, blocker, root):
    (tmp_path / blocker).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / blocker).write_text("x")
    with pytest.raises(OutputError, match=f"{tmp_path / blocker} is a file, not a directory"):
        check_output_root(tmp_path / root, "demo")


def test_a_write_refused_by_the_disk_says_what_was_kept(tmp_path):
    full = OSError(errno.ENOSPC, "No space left on device")
    assert is_disk_error(full) and not is_disk_error(OSError(errno.ENOENT, "gone"))
    message = str(write_failure(full, tmp_path / "results.json", "KEPT."))
    assert message.startswith(f"cannot write {tmp_path / 'results.json'}: no space left")
    assert "KEPT." in message and "run the same command again" in message
