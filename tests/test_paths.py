"""Paths in a config file are relative to the config file and `~` is expanded in each of them,
so a config means the same files from any working directory; paths on the command line stay
relative to the working directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.config import load_config

from .conftest import only_run_dir, run_harness, write_config


def every_path(model_path: str, prefix: str) -> dict:
    return {
        "name": "p",
        "models": [{"id": "m", "path": model_path}],
        "suites": ["smoke"],
        "task_paths": [f"{prefix}tasks"],
        "data_dir": f"{prefix}data",
        "output_dir": f"{prefix}out",
        "baseline": f"{prefix}runs/earlier",
    }


def test_every_path_is_relative_to_the_config_file(tmp_path, monkeypatch):
    (tmp_path / "project").mkdir()
    config_file = write_config(tmp_path / "project", every_path("models/m", ""))
    monkeypatch.chdir(tmp_path)  # elsewhere than the config file
    config = load_config(Path("project") / config_file.name)
    base = tmp_path / "project"
    assert config.models[0].path == base / "models" / "m"
    assert config.task_paths == [base / "tasks"]
    assert config.data_dir == base / "data"
    assert config.output_dir == base / "out"
    assert config.baseline == str(base / "runs" / "earlier")


def test_tilde_is_expanded_in_every_path(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "project").mkdir()
    config = load_config(write_config(tmp_path / "project", every_path("~/models/m", "~/")))
    assert config.models[0].path == home / "models" / "m"
    assert config.task_paths == [home / "tasks"]
    assert config.data_dir == home / "data"
    assert config.output_dir == home / "out"
    assert config.baseline == str(home / "runs" / "earlier")


def test_an_unknown_home_is_one_clear_error(tmp_path):
    from harness.errors import ConfigError

    config_file = write_config(tmp_path, every_path("~no-such-user-here/m", ""))
    with pytest.raises(ConfigError, match=r"run\.yaml: a path starting with `~` cannot be"):
        load_config(config_file)


def test_absolute_paths_stay_and_variables_are_not_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA", "/elsewhere")
    data = {**every_path(str(tmp_path / "m"), ""), "data_dir": "$DATA/copies"}
    config = load_config(write_config(tmp_path, data))
    assert config.models[0].path == tmp_path / "m"
    # Only `~`: a `$` is part of the name (docs/paths-and-cache.md says why).
    assert config.data_dir == tmp_path / "$DATA" / "copies"


def test_left_out_output_dir_and_previous_baseline_keep_their_meaning(tmp_path):
    data = {"name": "p", "models": [{"id": "m", "package": "x"}], "suites": ["smoke"],
            "baseline": "previous"}  # fmt: skip
    config = load_config(write_config(tmp_path, data))
    assert config.output_dir == Path("results")  # the working directory's, as before
    assert config.baseline == "previous"


@pytest.mark.slow
def test_a_run_finds_home_paths_and_writes_beside_its_config(tmp_path, tiny_model_dir):
    """A real run, from another working directory, of a config whose model is under `~` and
    whose output_dir is relative: the model is found and the results land beside the config;
    `--output` on the command line is relative to the working directory."""
    home = tmp_path / "home"
    shutil.copytree(tiny_model_dir, home / "models" / "tiny")
    (home / "project").mkdir(parents=True)
    config = write_config(home / "project", {
        "name": "paths", "models": [{"id": "tiny", "path": "~/models/tiny", "device": "cpu"}],
        "suites": ["smoke_en"], "output_dir": "results-here",
    })  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"HOME": str(home)}
    relative_config = Path("..") / "home" / "project" / config.name

    validated = run_harness("validate", str(relative_config), cwd=elsewhere, env=env)
    assert validated.returncode == 0, validated.stderr
    proc = run_harness("run", str(relative_config), "--limit", "2", cwd=elsewhere, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = only_run_dir(home / "project" / "results-here")
    assert (run_dir / "results.json").is_file()
    assert not (elsewhere / "results-here").exists() and not (elsewhere / "results").exists()

    history = run_harness("history", str(relative_config), "--output", "nowhere", cwd=elsewhere,
                          env=env)  # fmt: skip
    assert "nowhere" in history.stdout + history.stderr  # read from the working directory
    assert not (home / "project" / "nowhere").exists()
