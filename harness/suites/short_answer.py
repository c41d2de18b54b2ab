"""Short-answer scoring for generation tasks in any script: exact match after normalisation,
and chrF on the same answer.

lm-eval's own `exact_match` ignores ASCII punctuation only, so a Hindi answer ending in a danda
(।), a Japanese one in a full stop (。) or an Arabic number written in Arabic-Indic digits would
count as wrong. `normalize_answer` folds those differences away; `process_results` is the
`process_results:` hook of a task YAML:

    process_results: !function harness.suites.short_answer.process_results
    metric_list:
      - {metric: exact_match, aggregation: mean, higher_is_better: true}
      - {metric: chrf, aggregation: chrf, higher_is_better: true}

Items carry `answer` (the reference) and optionally `aliases` (other accepted forms).
chrF (sacrebleu, through lm-eval's `chrf` aggregation) compares the first line of the answer
with the reference, so a near miss ("Neu-Delhi" for "Neu Delhi") earns partial credit.
"""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")
_ANSWER_LABEL = re.compile(r"^(?:a|answer|antwort|réponse|risposta|respusta)\s*[:：]\s*", re.I)


def normalize_answer(text: str) -> str:
    """Fold the differences that do not change an answer: Unicode compatibility forms
    (full-width letters), case, digits of any script (५, ٥, ৫ -> 5), punctuation and symbols
    of any script, and runs of whitespace. Letters and combining marks are kept."""
    text = unicodedata.normalize("NFKC", text).casefold()
    out = []
    for char in text:
        digit = unicodedata.decimal(char, None)
        if digit is not None:
            out.append(str(digit))
        elif unicodedata.category(char)[0] in "PS":
            out.append(" ")
        else:
            out.append(char)
    return _SPACES.sub(" ", "".join(out)).strip()


def first_answer_line(generation: str) -> str:
    """The answer part of a generation: its first non-empty line, without an `A:` label."""
    for line in generation.splitlines():
        if line.strip():
            return _ANSWER_LABEL.sub("", line.strip())
    return ""


def accepted_answers(doc: dict) -> list[str]:
    """The reference answer and its aliases."""
    return [doc["answer"], *(doc.get("aliases") or [])]


def process_results(doc: dict, results: list[str]) -> dict:
    """lm-eval `process_results` hook: exact match against the reference or an alias after
    `normalize_answer`, and the (reference, answer) pair for corpus chrF."""
    answer = first_answer_line(results[0] if results else "")
    normalized = normalize_answer(answer)
    matched = any(normalize_answer(ref) == normalized for ref in accepted_answers(doc))
    return {"exact_match": float(bool(normalized) and matched), "chrf": (doc["answer"], answer)}
