"""The checks of task data and task files that run before a model loads
(`harness.suites.jsonl.check_items`, `harness.suites.task_yaml`): real files, the project's
own task configs as lm-eval's TaskManager indexes them."""

from __future__ import annotations

import json

import pytest
import yaml

from harness.errors import TaskError
from harness.suites.jsonl import check_items, check_jsonl
from harness.suites.task_yaml import describe_yaml_error, likely_definition

MC = {
    "output_type": "multiple_choice",
    "doc_to_text": "{% if passage %}{{passage}}\n\n{% endif %}Q: {{question}}\nA:",
    "doc_to_choice": "{{choices}}",
    "doc_to_target": "answer",
}
GEN = {"output_type": "generate_until", "doc_to_text": "Q: {{question}}\nA:",
       "doc_to_target": "{{answer}}"}  # fmt: skip
GOOD = {"question": "Capital of France?", "choices": ["Rome", "Paris"], "answer": 1}


def write_items(tmp_path, *items) -> object:
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "task, item, key, fragment",
    [
        (MC, {**GOOD, "answer": 2}, "answer", "`answer` is 2, but there are 2 options"),
        (MC, {**GOOD, "answer": -1}, "answer", "`answer` is -1"),
        (MC, {**GOOD, "answer": "Berlin"}, "answer", "'Berlin' is not one of the options"),
        (MC, {**GOOD, "answer": 1.0}, "answer", "give a whole number"),
        (MC, {**GOOD, "answer": True}, "answer", "`answer` is a boolean"),
        (MC, {k: v for k, v in GOOD.items() if k != "answer"}, "answer", "no `answer`"),
        (MC, {**GOOD, "choices": "Rome, Paris"}, "choices", "is a string, not a list"),
        (
            MC,
            {**GOOD, "choices": ["Paris"], "answer": 0},
            "choices",
            "has 1 option(s); give at least 2",
        ),
        (MC, {**GOOD, "choices": ["12", 13]}, "choices", "option 1 is a number"),
        (MC, {k: v for k, v in GOOD.items() if k != "question"}, "question", "no `question`"),
        (GEN, {"question": "Capital?"}, "answer", "no `answer` (the reference answer"),
    ],
)
def test_an_item_the_task_cannot_score(tmp_path, task, item, key, fragment):
    path = write_items(tmp_path, GOOD, item)
    problems = check_items(path, task)
    assert [(p.line, p.key) for p in problems] == [(2, key)], problems
    assert fragment in problems[0].message
    with pytest.raises(TaskError, match=f"{path} line 2: "):
        check_jsonl(path, task)


def test_items_the_task_can_score(tmp_path):
    reading = {**GOOD, "passage": "Paris is the capital."}  # a key only some items have
    digits = {**GOOD, "answer": "1"}  # lm-eval reads a string of digits as the index
    text = {**GOOD, "answer": "Paris"}
    assert check_items(write_items(tmp_path, GOOD, reading), MC) == []
    assert check_items(write_items(tmp_path, digits), MC) == []
    assert check_items(write_items(tmp_path, text), MC) == []
    assert check_items(write_items(tmp_path, {"question": "q", "answer": "a"}), GEN) == []


def test_a_key_whose_type_changes_is_named_once(tmp_path):
    items = [GOOD, {**GOOD, "answer": "1"}, {**GOOD, "answer": "0"}, GOOD]
    problems = check_items(write_items(tmp_path, *items))  # no task: lines and types only
    assert [(p.line, p.key) for p in problems] == [(2, "answer")]
    assert "a string here but a number on line 1" in problems[0].message


def test_without_a_task_only_the_lines_are_checked(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n{"a": \n', encoding="utf-8")
    assert [(p.line, p.message.split(" (")[0]) for p in check_items(path)] == [
        (2, "a JSON list, not an object. Each line must be one JSON object."),
        (3, "not valid JSON"),
    ]


def test_a_long_list_of_problems_is_cut(tmp_path):
    path = write_items(tmp_path, *[{**GOOD, "answer": 9}] * 20)
    with pytest.raises(TaskError) as raised:
        check_jsonl(path, MC)
    assert str(raised.value).count("`answer` is 9") == 8
    assert f"... and 12 more in {path}" in str(raised.value)


def test_every_project_task_passes():
    """The checks hold for every item of the built-in suites (3,000 and more)."""
    from harness.suites import SuiteCatalog

    assert sum(info.total_items for info in SuiteCatalog().local_suites()) > 3000


def test_a_yaml_syntax_error_is_said_with_its_line(tmp_path):
    path = tmp_path / "mine_en.yaml"
    path.write_text("task: mine_en\ndataset_kwargs:\n  data_files:\n    test: [a.jsonl\n")
    with pytest.raises(yaml.YAMLError) as raised, path.open(encoding="utf-8") as stream:
        yaml.safe_load(stream)
    described = describe_yaml_error(raised.value, path)
    assert described.startswith("not valid YAML at line 5, column 1: expected ',' or ']'")
    assert "(while parsing a flow sequence at line 4)" in described
    assert likely_definition("mine_en", [(path, described)]) == (path, described)
    other = tmp_path / "other.yaml"
    other.write_text("group: mine\ntask: [mine_en\n")
    assert likely_definition("mine", [(other, "x")]) == (other, "x")
    assert likely_definition("yours", [(path, described), (other, "x")]) is None


def test_a_suites_items_are_the_split_lm_eval_scores_not_its_few_shot_split():
    """native_en_gen reads gen.jsonl (test, 24 items) and gen_dev.jsonl (dev: 3 few-shot
    examples). Counting both made every full run of it PARTIAL (24 of 27), its gates never
    judged. Both files are still checked and hashed."""
    from harness.suites import SuiteCatalog

    info = SuiteCatalog().describe("native_en")
    lines = {p.name: sum(1 for _ in p.open(encoding="utf-8")) for p in info.data_files}
    assert lines["gen.jsonl"] == 24 and lines["gen_dev.jsonl"] == 3
    assert info.items["native_en_gen"] == 24
    assert info.items["native_en_mc"] == lines["mc.jsonl"]
