"""The config reference: `harness schema` prints the config's JSON schema for editors, every key
of every section is described, and docs/config.md is what the schema renders to now."""

from __future__ import annotations

import json

from harness.config import RunConfig
from harness.reference import config_reference, config_schema

from .conftest import REPO, run_harness


def test_schema_command_prints_the_config_schema():
    proc = run_harness("schema")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed == json.loads(json.dumps(config_schema()))
    assert set(printed["properties"]) == set(RunConfig.model_fields)
    assert printed["additionalProperties"] is False  # a misspelt key is an error, as in run
    assert set(printed["required"]) == {"name", "models", "suites"}


def test_every_key_of_every_section_is_described():
    schema = config_schema()
    sections = {"top level": schema, **schema["$defs"]}
    undescribed = [
        f"{name}.{key}"
        for name, section in sections.items()
        for key, prop in section.get("properties", {}).items()
        if not prop.get("description", "").strip()
    ]
    assert undescribed == [], "give these fields a docstring in harness/config.py"


def test_docs_config_md_is_up_to_date():
    written = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    assert written == config_reference(), "run `make docs` and commit docs/config.md"
    for key in RunConfig.model_fields:
        assert f"| `{key}` |" in written
