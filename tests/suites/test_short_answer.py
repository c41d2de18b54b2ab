"""Short-answer scoring in any script: what normalisation folds away, and what it keeps."""

from __future__ import annotations

import pytest

from harness.suites.short_answer import first_answer_line, normalize_answer, process_results


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("  Paris. ", "paris"),
        ("नई दिल्ली।", "नई दिल्ली"),  # danda
        ("東京。", "東京"),  # ideographic full stop
        ("ＴＯＫＹＯ", "tokyo"),  # full-width letters
        ("٢٥", "25"),  # Arabic-Indic digits
        ("۱۲۳", "123"),  # Extended Arabic-Indic (Urdu)
        ("৫০ টাকা", "50 টাকা"),  # Bengali digits, the word kept
        ("₹ 60", "60"),  # currency sign
        ("1,000", "1 000"),  # a separator becomes a space, not nothing
        ("Neuenburger  See", "neuenburger see"),
        ("மதுரை", "மதுரை"),  # combining vowel signs are letters' marks: kept
        ("", ""),
    ],
)
def test_normalize_answer(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_different_answers_stay_different():
    assert normalize_answer("कमल") != normalize_answer("कोमल")
    assert normalize_answer("Bern") != normalize_answer("Berne")
    assert normalize_answer("12") != normalize_answer("21")


def test_first_answer_line():
    assert first_answer_line(" Paris\nQ: next") == "Paris"
    assert first_answer_line("\n\n  A: Bern  \n") == "Bern"
    assert first_answer_line("Antwort: Bern") == "Bern"
    assert first_answer_line("") == ""


def test_process_results_accepts_aliases_and_scores_chrf_pairs():
    doc = {"answer": "नई दिल्ली", "aliases": ["दिल्ली"]}
    assert process_results(doc, [" दिल्ली।\nQ:"]) == {
        "exact_match": 1.0,
        "chrf": ("नई दिल्ली", "दिल्ली।"),
    }
    assert process_results(doc, [" मुंबई"])["exact_match"] == 0.0
    assert process_results({"answer": "25", "aliases": []}, ["٢٥"])["exact_match"] == 1.0
    assert process_results({"answer": "x", "aliases": []}, ["   "])["exact_match"] == 0.0
