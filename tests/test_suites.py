"""The smoke suite's data files and task definitions, as harness and lm-eval will read them."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from harness.errors import TaskError
from harness.suites import SuiteCatalog, check_jsonl

from .conftest import REPO

LANGUAGES = {
    "en": "Latn", "hi": "Deva", "ta": "Taml", "ar": "Arab",
    "fr": "Latn", "de": "Latn", "ko": "Hang", "ja": "Jpan",
}  # fmt: skip
KEYS = ["id", "language", "script", "domain", "question", "choices", "answer"]
# Characters each script must contain in every question (a sign the text is in that script).
SCRIPT_CHARS = {
    "Deva": r"[\u0900-\u097F]", "Taml": r"[\u0B80-\u0BFF]", "Arab": r"[\u0600-\u06FF]",
    "Hang": r"[\uAC00-\uD7AF]", "Jpan": r"[\u3040-\u30FF\u4E00-\u9FFF]", "Latn": r"[A-Za-z]",
}  # fmt: skip


def items(lang: str) -> list[dict]:
    path = REPO / "tasks" / "smoke" / "data" / f"{lang}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_items_are_well_formed(lang):
    rows = items(lang)
    assert len(rows) >= 20
    assert [r["id"] for r in rows] == [f"{lang}-{i:02d}" for i in range(1, len(rows) + 1)]
    for row in rows:
        assert list(row) == KEYS, row["id"]
        assert row["language"] == lang and row["script"] == LANGUAGES[lang], row["id"]
        assert re.search(SCRIPT_CHARS[LANGUAGES[lang]], row["question"]), row["id"]
        choices = row["choices"]
        assert len(choices) == 4 and len(set(choices)) == 4 and all(c.strip() for c in choices)
        assert row["answer"] in range(4), row["id"]
    assert Counter(r["domain"] for r in rows) == {"facts": 8, "arithmetic": 8, "reasoning": 8}
    assert set(Counter(r["answer"] for r in rows).values()) == {len(rows) // 4}


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_every_language_asks_for_the_capital_of_france(lang):
    first = items(lang)[0]
    paris = {"en": "Paris", "fr": "Paris", "de": "Paris", "hi": "पेरिस", "ta": "பாரிஸ்",
             "ar": "باريس", "ko": "파리", "ja": "パリ"}  # fmt: skip
    assert first["choices"][first["answer"]] == paris[lang]


def test_catalog_describes_the_smoke_group():
    [info] = SuiteCatalog().check(["smoke"])
    assert info.kind == "group"
    assert info.tasks == [
        f"smoke_{lang}" for lang in ["en", "hi", "ta", "ar", "fr", "de", "ko", "ja"]
    ]
    assert info.languages == {f"smoke_{lang}": lang for lang in LANGUAGES}
    assert info.items == {f"smoke_{lang}": 24 for lang in LANGUAGES}
    assert all(p.is_file() for p in info.data_files)


def test_check_jsonl_names_the_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(TaskError, match=r"x.jsonl line 3: a JSON list, not an object"):
        check_jsonl(path)
    path.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(TaskError, match=r"x.jsonl line 2: not valid JSON"):
        check_jsonl(path)
    path.write_text('{"a": 1}\n{"b": 2}\n', encoding="utf-8")
    assert check_jsonl(path) == 2
