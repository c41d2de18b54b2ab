"""Language codes: ISO 639 and BCP 47 in any usual spelling, read with `langcodes` (the IANA
language subtag registry it ships), and what harness needs to know of a language.

Codes come out as short BCP 47 tags: the macrolanguage, no region, the script only when it is not
the language's usual one (`sw`, `ar`, `zh`, `hi`, `hi-Latn`, `zh-Hant`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

MULTIPLE = "mul"
"""BCP 47 for several languages at once: a translation task."""

ALIASES = {"jp": "ja", "ch": "zh"}
"""Codes lm-eval uses that are not ISO 639-1 (`xwinograd_jp`, `pisa_ch`)."""

NOT_LANGUAGES = frozenset({"all", "gen", "mix", "out", "two", "law", "art", "age", "pro", "bio"})
"""English words that are also ISO 639-3 codes and appear as lm-eval name segments or dataset
configs; never read as a code without a two-letter equivalent."""

UNSPACED_SCRIPTS = frozenset(
    {"Hani", "Hans", "Hant", "Jpan", "Hira", "Kana", "Thai", "Laoo", "Khmr", "Mymr", "Tibt"}
)
"""Scripts written without spaces between words: tokens per word means nothing in them."""

_SCRIPT_PARTS = {"Kore": ("Hang",), "Jpan": ("Hira", "Kana", "Hrkt")}
"""Scripts that a language's usual script is made of: Korean is `Kore` (Hangul with Hanja), so
`kor_Hang` is plain Korean."""


@dataclass(frozen=True)
class _Registry:
    two: frozenset[str]
    """Current two-letter language subtags (ISO 639-1)."""
    deprecated: frozenset[str]
    names: Mapping[str, str]
    """Lower-case English name -> code, for names that cannot be mistaken for words."""


@lru_cache(maxsize=1)
def _registry() -> _Registry:
    """What `langcodes` alone does not answer, from the IANA registry file it ships (read
    directly: its own parser takes a second for the 9,000 records)."""
    from langcodes.util import data_filename

    two, deprecated, names = set(), set(), {}
    text = open(data_filename("language-subtag-registry.txt"), encoding="utf-8").read()
    for record in text.split("\n%%\n"):
        if not record.startswith("Type: language\n"):
            continue
        fields = [line.partition(": ") for line in record.replace("\n  ", " ").splitlines()]
        subtag = next(value for key, _, value in fields if key == "Subtag")
        if ".." in subtag:
            continue
        if any(key == "Deprecated" for key, _, _ in fields):
            deprecated.add(subtag)
            continue
        if len(subtag) == 2:
            two.add(subtag)
        for key, _, description in fields:
            name = re.sub(r"\s*\(.*\)$", "", description).lower()
            # ISO 639-1 names from four letters (Thai, Urdu); others from seven, so that
            # words such as "bench" (Bench, bcq) are not read as languages.
            if key == "Description" and name.isalpha():
                if len(name) >= (4 if len(subtag) == 2 else 7):
                    if len(subtag) == 2 or name not in names:
                        names[name] = subtag
    return _Registry(frozenset(two), frozenset(deprecated), names)


@lru_cache(maxsize=4096)
def normalize(code: str) -> str | None:
    """A language code in any usual spelling (`sw`, `swa`, `swh_Latn`, `hi-Deva`, `pt_BR`,
    `Swahili`) as a short BCP 47 tag (`sw`, `hi`, `pt`), or None when it names no language."""
    import langcodes

    text = code.strip().replace("_", "-")
    if not text:
        return None
    if text.isalpha() and len(text) > 3:
        text = _registry().names.get(text.lower(), "")
    try:
        tag = langcodes.Language.get(text)
    except (ValueError, langcodes.tag_parser.LanguageTagError):
        return None
    if not tag.language or tag.language == "und" or not tag.is_valid():
        return None
    tag = tag.prefer_macrolanguage()
    script = tag.script
    if script:
        usual = langcodes.Language.get(tag.language).maximize().script
        if script == usual or script in _SCRIPT_PARTS.get(usual, ()):
            script = None
    return langcodes.Language.make(language=tag.language, script=script).to_tag()


def matches(language: str | None, wanted: str) -> bool:
    """Whether a task's language is the one asked for: `hi` takes `hi` and `hi-Latn`,
    `hi-Latn` only `hi-Latn`."""
    if not language:
        return False
    return language == wanted or ("-" not in wanted and language.split("-")[0] == wanted)


def words_are_spaced(language: str | None) -> bool:
    """Whether the language is written with spaces between words; False when unknown (`und`),
    mixed (`mul`) or written in a script without them (Japanese, Chinese, Thai, ...)."""
    import langcodes

    if not language or language in ("und", MULTIPLE):
        return False
    try:
        tag = langcodes.Language.get(language)
    except (ValueError, langcodes.tag_parser.LanguageTagError):
        return False
    script = tag.script or tag.maximize().script
    return bool(script) and script not in UNSPACED_SCRIPTS


def code(segment: str) -> str | None:
    """A bare code segment (lower case) as a language, without context."""
    import langcodes

    segment = ALIASES.get(segment, segment)
    if len(segment) == 2 and segment in _registry().two:
        return normalize(segment)
    if len(segment) == 3 and segment.isalpha() and segment not in NOT_LANGUAGES:
        if segment not in _registry().deprecated and langcodes.tag_is_valid(segment):
            return normalize(segment)
    return None


def is_major(segment: str) -> bool:
    """A two-letter code, or a three-letter one with a two-letter equivalent (`swa`, not `egy`)."""
    language = code(segment)
    return language is not None and len(language.split("-")[0]) == 2


def english_name(word: str) -> str | None:
    """The code of the language whose English name is `word` (`hindi` -> `hi`), for names
    that cannot be mistaken for English words; None otherwise."""
    return _registry().names.get(word.lower())
