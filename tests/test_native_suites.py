"""The authored `native` suites: every data file checked item by item, as they will be scored.

What a script can check is checked here: the format, the counts per domain, balanced answer
positions, the script of every text, that each arithmetic answer equals its worked solution,
that reading questions come four to a passage, and that short answers survive normalisation.
Whether an item is true and natural was checked by hand (tasks/README.md).
"""

from __future__ import annotations

import ast
import json
import operator
import unicodedata
from collections import Counter

import pytest

from harness.suites.short_answer import normalize_answer

from .conftest import REPO

NATIVE = REPO / "tasks" / "native"

# code: (ISO 15924 script, Unicode script names its letters may come from)
LANGUAGES = {
    "en": ("Latn", {"LATIN"}),
    "hi": ("Deva", {"DEVANAGARI"}),
    "bn": ("Beng", {"BENGALI"}),
    "ta": ("Taml", {"TAMIL"}),
    "te": ("Telu", {"TELUGU"}),
    "mr": ("Deva", {"DEVANAGARI"}),
    "gu": ("Gujr", {"GUJARATI"}),
    "kn": ("Knda", {"KANNADA"}),
    "ml": ("Mlym", {"MALAYALAM"}),
    "or": ("Orya", {"ORIYA"}),
    "pa": ("Guru", {"GURMUKHI"}),
    "ur": ("Arab", {"ARABIC"}),
    "ar": ("Arab", {"ARABIC"}),
    "fr": ("Latn", {"LATIN"}),
    "de": ("Latn", {"LATIN"}),
    "it": ("Latn", {"LATIN"}),
    "rm": ("Latn", {"LATIN"}),
    "ko": ("Hang", {"HANGUL", "CJK"}),
    "ja": ("Jpan", {"HIRAGANA", "KATAKANA", "CJK"}),
}
MC_DOMAINS = {"civic": 10, "everyday": 10, "arithmetic": 16, "reading": 16}
GEN_DOMAINS = {"civic": 8, "everyday": 8, "arithmetic": 8}
DEV_DOMAINS = {"civic": 1, "everyday": 1, "arithmetic": 1}
BASE_KEYS = ["id", "language", "script", "domain"]


def rows(lang: str, name: str) -> list[dict]:
    path = NATIVE / lang / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def script_share(text: str, scripts: set[str]) -> float:
    """Share of the letters of `text` that belong to one of `scripts`."""
    letters = [c for c in text if unicodedata.category(c).startswith("L")]
    if not letters:
        return 0.0
    inside = sum(1 for c in letters if unicodedata.name(c, "?").split()[0] in scripts)
    return inside / len(letters)


def number_in(text: str) -> int | None:
    """The integer written in `text`, in the digits of any script, grouping marks ignored."""
    digits = "".join(
        str(unicodedata.decimal(c)) for c in text if unicodedata.decimal(c, None) is not None
    )
    return int(digits) if digits else None


_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


def evaluate(expression: str) -> float:
    """Value of an arithmetic expression of integers and + - * / // % and brackets."""

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(f"not plain arithmetic: {ast.dump(node)}")

    return walk(ast.parse(expression, mode="eval"))


def check_common(row: dict, lang: str, expected_id: str) -> None:
    script, _ = LANGUAGES[lang]
    assert row["id"] == expected_id, row
    assert row["language"] == lang and row["script"] == script, row["id"]


def check_script(row: dict, lang: str, *texts: str) -> None:
    _, scripts = LANGUAGES[lang]
    text = " ".join(texts)
    assert script_share(text, scripts) >= 0.75, f"{row['id']}: text not in {scripts}: {text!r}"


def check_solution(row: dict, written: str) -> None:
    value = evaluate(row["solution"])
    assert value == int(value), f"{row['id']}: solution {row['solution']} is not a whole number"
    assert number_in(written) == int(value), (
        f"{row['id']}: answer {written!r} but solution {row['solution']} = {value}"
    )


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_multiple_choice_items(lang):
    items = rows(lang, "mc")
    assert Counter(r["domain"] for r in items) == MC_DOMAINS
    for number, row in enumerate(items, start=1):
        check_common(row, lang, f"{lang}-mc-{number:02d}")
        keys = BASE_KEYS + (["passage"] if row["domain"] == "reading" else [])
        keys += ["question", "choices", "answer"]
        keys += ["solution"] if row["domain"] == "arithmetic" else []
        assert list(row) == keys, row["id"]
        choices = row["choices"]
        assert len(choices) == 4 and all(isinstance(c, str) and c.strip() for c in choices)
        assert len({c.strip() for c in choices}) == 4, f"{row['id']}: repeated choice"
        assert row["answer"] in range(4), row["id"]
        if row["domain"] == "arithmetic":
            check_script(row, lang, row["question"])
            check_solution(row, choices[row["answer"]])
            values = [number_in(c) for c in choices]
            assert None not in values and len(set(values)) == 4, f"{row['id']}: {choices}"
        else:
            check_script(row, lang, row.get("passage", ""), row["question"], *choices)
    answers = Counter(r["answer"] for r in items)
    assert sorted(answers.values()) == [13, 13, 13, 13], f"answer positions {dict(answers)}"
    plain = [r["question"] for r in items if r["domain"] != "reading"]
    assert len(set(plain)) == len(plain), "repeated question"


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_reading_items_come_four_to_a_passage(lang):
    reading = [r for r in rows(lang, "mc") if r["domain"] == "reading"]
    passages = Counter(r["passage"] for r in reading)
    assert sorted(passages.values()) == [4, 4, 4, 4]
    for passage in passages:
        length = len(passage) if lang == "ja" else len(passage.split())
        assert (120 if lang == "ja" else 40) <= length <= (600 if lang == "ja" else 200), passage
        questions = [r["question"] for r in reading if r["passage"] == passage]
        assert len(set(questions)) == 4, f"repeated question on passage {passage[:40]!r}"


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
@pytest.mark.parametrize("split", ["gen", "gen_dev"])
def test_short_answer_items(lang, split):
    items = rows(lang, split)
    expected = GEN_DOMAINS if split == "gen" else DEV_DOMAINS
    assert Counter(r["domain"] for r in items) == expected
    prefix = f"{lang}-gen" if split == "gen" else f"{lang}-dev"
    for number, row in enumerate(items, start=1):
        check_common(row, lang, f"{prefix}-{number:02d}")
        keys = BASE_KEYS + ["question", "answer", "aliases"]
        keys += ["solution"] if row["domain"] == "arithmetic" else []
        assert list(row) == keys, row["id"]
        check_script(row, lang, row["question"])
        answers = [row["answer"], *row["aliases"]]
        assert all(isinstance(a, str) and a.strip() for a in answers), row["id"]
        assert len(row["answer"]) <= 40, f"{row['id']}: not a short answer"
        normalized = [normalize_answer(a) for a in answers]
        assert all(normalized) and len(set(normalized)) == len(normalized), (
            f"{row['id']}: aliases that normalise to the same text or to nothing: {answers}"
        )
        if row["domain"] == "arithmetic":
            check_solution(row, row["answer"])
        else:
            check_script(row, lang, row["answer"])
    questions = [r["question"] for r in items]
    assert len(set(questions)) == len(questions), "repeated question"


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_dev_items_are_not_test_items(lang):
    test = {r["question"] for r in rows(lang, "gen")}
    assert not test & {r["question"] for r in rows(lang, "gen_dev")}
