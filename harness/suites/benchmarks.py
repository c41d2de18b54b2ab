"""lm-eval's standard benchmarks: a short list for each language in view, and the benchmarks
whose names carry no language.

The language of a task is read off lm-eval's own names (`harness.suites.languages`), so
`harness tasks --available --language CODE` lists every lm-eval suite in any language; `STANDARD`
is only what `--available` shows without `--language`. Every name is an lm-eval task or group of
the pinned lm-eval, and its derived language is its key here (tests check both). Their data comes
from the Hugging Face hub, so offline they run from a local copy (`harness.suites.sources`).
"""

from __future__ import annotations

UNMARKED: dict[str, str] = {
    "kmmlu": "ko",
    "haerae": "ko",
    "kobest": "ko",
    "click": "ko",
    "arabicmmlu": "ar",
    "AraDiCE": "ar",
    "french_bench": "fr",
}
"""lm-eval benchmarks whose names carry no language code or name (a name, or a prefix before
`_`, -> language); every other language is read off lm-eval's names (`harness.suites.languages`)."""

STANDARD: dict[str, tuple[str, ...]] = {
    "en": ("belebele_eng_Latn", "global_mmlu_full_en", "xnli_en", "mgsm_direct_en",
           "xstorycloze_en"),
    "hi": ("belebele_hin_Deva", "global_mmlu_full_hi", "include_base_44_hindi", "xnli_hi",
           "xstorycloze_hi"),
    "bn": ("belebele_ben_Beng", "global_mmlu_full_bn", "include_base_44_bengali",
           "mgsm_direct_bn"),
    "ta": ("belebele_tam_Taml", "include_base_44_tamil", "xcopa_ta"),
    "te": ("belebele_tel_Telu", "global_mmlu_full_te", "include_base_44_telugu",
           "mgsm_direct_te", "xstorycloze_te"),
    "mr": ("belebele_mar_Deva", "indicparam_marathi"),
    "gu": ("belebele_guj_Gujr", "indicxnli_gu", "indicparam_gujarati"),
    "kn": ("belebele_kan_Knda",),
    "ml": ("belebele_mal_Mlym", "include_base_44_malayalam"),
    "or": ("belebele_ory_Orya", "indicparam_oriya"),
    "pa": ("belebele_pan_Guru",),
    "ur": ("belebele_urd_Arab", "include_base_44_urdu", "xnli_ur"),
    "ar": ("belebele_arb_Arab", "global_mmlu_full_ar", "include_base_44_arabic", "arabicmmlu",
           "xnli_ar", "xstorycloze_ar"),
    "fr": ("belebele_fra_Latn", "global_mmlu_full_fr", "include_base_44_french", "xnli_fr",
           "mgsm_direct_fr", "french_bench_mc"),
    "de": ("belebele_deu_Latn", "global_mmlu_full_de", "include_base_44_german", "xnli_de",
           "mgsm_direct_de"),
    "it": ("belebele_ita_Latn", "global_mmlu_full_it", "include_base_44_italian", "xcopa_it"),
    "rm": (),
    "ko": ("belebele_kor_Hang", "global_mmlu_full_ko", "include_base_44_korean", "kmmlu",
           "haerae", "kobest", "click"),
    "ja": ("belebele_jpn_Jpan", "global_mmlu_full_ja", "include_base_44_japanese",
           "mgsm_direct_ja", "japanese_leaderboard"),
}  # fmt: skip


def standard_suites(languages: list[str] | None = None) -> list[tuple[str, str]]:
    """(language, suite) pairs for `languages` (default: all in view), in table order."""
    codes = languages or list(STANDARD)
    return [(code, name) for code in codes for name in STANDARD.get(code, ())]
