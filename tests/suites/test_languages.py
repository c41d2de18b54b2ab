"""Languages read off lm-eval's own task names and configs: the installed lm-eval's real task
YAMLs (a few benchmark folders, indexed as lm-eval indexes them), harness's catalog over them,
the tokenizer fitness that depends on the language, and `harness tasks` over the full registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.families.tiny import train_tokenizer
from harness.suites.fitness import group_by_language, tokenizer_fitness
from harness.suites.languages import LanguageIndex, matches, normalize, words_are_spaced

from ..conftest import run_harness

FOLDERS = (
    "belebele", "xnli", "xnli_eu", "mgsm", "japanese_leaderboard", "pisa", "csatqa", "polemo2",
    "libra", "zhoblimp", "xwinograd", "mlqa", "kobest", "include/default/Japanese",
    "afrimgsm/direct", "uncheatable_eval", "basque_bench/flores_eu", "indicxnli",
)  # fmt: skip
"""lm-eval task folders with the conventions and the traps (read in place, not copied)."""


def lm_eval_tasks() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).parent / "tasks"


@pytest.fixture(scope="module")
def index():
    """lm-eval's own index of those folders: the entries `TaskManager.task_index` holds."""
    from lm_eval.tasks._index import TaskIndex

    folders = [lm_eval_tasks() / f for f in FOLDERS]
    assert all(f.is_dir() for f in folders), [f for f in folders if not f.is_dir()]
    return TaskIndex.build(folders)


@pytest.mark.parametrize(
    "task, language",
    [
        ("belebele_swh_Latn", "sw"),  # code and script
        ("xnli_sw", "sw"),  # a code as the last segment, siblings xnli_<code>
        ("mgsm_direct_sw", "sw"),
        ("belebele_hin_Deva", "hi"),  # the usual script is dropped, another one kept
        ("belebele_hin_Latn", "hi-Latn"),
        ("belebele_zho_Hant", "zh-Hant"),
        ("belebele_arb_Arab", "ar"),  # Standard Arabic: the macrolanguage
        ("belebele_kor_Hang", "ko"),  # Hangul is part of Korean's usual script
        ("indicxnli_gu", "gu"),  # no siblings, but its data files sit in gu/
        ("afrimgsm_swa_prompt_1", "sw"),  # ISO 639-3 (its dataset config)
        ("ja_leaderboard_jnli", "ja"),  # from its group, japanese_leaderboard
        ("include_base_44_japanese_driving_license", "ja"),  # a language's name
        ("kobest_boolq", "ko"),  # named without a code: benchmarks.UNMARKED
        ("kobest_wic", "ko"),  # not Wichita (`wic`), though its config is `wic` too
        ("xwinograd_jp", "ja"),  # lm-eval's own spellings
        ("pisa_ch", "zh"),
        ("mlqa_en_hi", "mul"),  # English context, Hindi question
        ("mlqa_hi_hi", "hi"),
        ("basque_bench_flores_eu-it", "mul"),  # a translation
    ],
)
def test_the_language_of_lm_evals_own_tasks(index, task, language):
    assert task in index, f"lm-eval no longer has {task}"
    assert LanguageIndex(index).of(task) == language


@pytest.mark.parametrize(
    "task",
    [
        "csatqa_li",  # literature, not Limburgish (its config is `LI`)
        "uncheatable_eval_arxiv_cs",  # computer science, not Czech
        "polemo2_in",  # in-domain; `in` is a withdrawn code for Indonesian
        "matreshka_yes_no",  # not Norwegian
        "zhoblimp_causative_shi_ba",  # not Bashkir
        "xnli_eu_mt",  # machine-translated Basque: Basque, not Maltese
    ],
)
def test_segments_that_look_like_codes_are_not_read_as_languages(index, task):
    assert task in index, f"lm-eval no longer has {task}"
    language = LanguageIndex(index).of(task)
    assert language in (None, "eu" if task == "xnli_eu_mt" else None), language


def test_the_largest_suites_of_a_language(index):
    suites = LanguageIndex(index).suites("sw")
    assert {"belebele_swh_Latn", "xnli_sw", "mgsm_direct_sw"} <= set(suites)
    assert "belebele" not in suites and "xnli" not in suites  # many languages
    japanese = LanguageIndex(index).suites("ja")
    assert "japanese_leaderboard" in japanese  # the group, not its tasks one by one
    assert "ja_leaderboard_jnli" not in japanese


@pytest.mark.parametrize(
    "given, tag",
    [
        ("sw", "sw"), ("swa", "sw"), ("swh", "sw"), ("swh_Latn", "sw"), ("Swahili", "sw"),
        ("hin_Deva", "hi"), ("hi-Latn", "hi-Latn"), ("pt_BR", "pt"), ("zh-Hant", "zh-Hant"),
        ("cmn", "zh"), ("npi", "ne"), ("ory", "or"), ("EN", "en"),
        ("xx", None), ("bench", None), ("", None), ("mgsm", None),
    ],
)  # fmt: skip
def test_codes_in_any_spelling_become_one_tag(given, tag):
    assert normalize(given) == tag


def test_a_language_matches_its_scripts_unless_one_is_asked_for():
    assert matches("hi-Latn", "hi") and matches("hi", "hi")
    assert not matches("hi", "hi-Latn") and not matches(None, "hi") and not matches("hr", "h")


@pytest.mark.parametrize(
    "language, spaced",
    [
        ("ja", False), ("zh", False), ("zh-Hant", False), ("th", False), ("my", False),
        ("lo", False), ("km", False), ("bo", False), ("yue", False),
        ("und", False), ("mul", False), (None, False),
        ("en", True), ("hi", True), ("ko", True), ("ar", True), ("sw", True), ("hi-Latn", True),
    ],
)  # fmt: skip
def test_which_languages_put_spaces_between_words(language, spaced):
    assert words_are_spaced(language) is spaced


def test_a_japanese_leaf_keeps_its_language_and_gets_no_tokens_per_word(tmp_path):
    """ja_leaderboard_jnli alone as a suite (lm-eval's own YAML): Japanese, from the group that
    lists it, and so no tokens-per-word figure, while Swahili has one."""
    from harness.suites.catalog import SuiteCatalog

    catalog = SuiteCatalog([lm_eval_tasks() / "japanese_leaderboard"])
    info = catalog.describe("ja_leaderboard_jnli")
    assert info.languages == {"ja_leaderboard_jnli": "ja"}
    records = [
        (
            info.languages["ja_leaderboard_jnli"],
            {"prompt": "前提:猫が寝ている。", "target": "含意"},
        ),
        ("sw", {"prompt": "Mji mkuu wa Kenya ni", "choices": [" Nairobi", " Mombasa"]}),
        ("und", {"prompt": "unknown text of a task without language", "target": "x"}),
    ]
    fitness = tokenizer_fitness(train_tokenizer(), group_by_language(records), 2048)
    assert fitness["ja"]["tokens_per_word"] is None
    assert fitness["und"]["tokens_per_word"] is None
    assert fitness["sw"]["tokens_per_word"] > 0
    assert fitness["ja"]["tokens_per_char"] > 0  # still measured per character


def test_a_local_task_named_without_language_takes_its_groups(tmp_path):
    """A task of ours with no `metadata.language`, in a group named `<benchmark>_sw`: Swahili
    when run alone, too."""
    from harness.suites.catalog import SuiteCatalog

    tasks = tmp_path / "tasks"
    (tasks / "data").mkdir(parents=True)
    (tasks / "data" / "items.jsonl").write_text(
        '{"question": "Mji mkuu wa Kenya ni?", "choices": ["Nairobi", "Mombasa"], "answer": 0}\n'
    )
    (tasks / "quiz.yaml").write_text(
        "task: civics_quiz\ndataset_path: json\n"
        f"dataset_kwargs: {{data_files: {{test: {tasks / 'data' / 'items.jsonl'}}}}}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{question}}'\n"
        "doc_to_target: answer\ndoc_to_choice: choices\nmetric_list: [{metric: acc}]\n"
    )
    (tasks / "group.yaml").write_text("group: quiz_swahili\ntask: [civics_quiz]\n")
    catalog = SuiteCatalog([tasks])
    assert catalog.describe("civics_quiz").languages == {"civics_quiz": "sw"}
    assert catalog.describe("quiz_swahili").languages == {"civics_quiz": "sw"}


def test_tasks_json_lists_leaves_with_languages():
    proc = run_harness("tasks", "--json", "--language", "ja")
    assert proc.returncode == 0, proc.stderr
    suites = {s["name"]: s for s in json.loads(proc.stdout)["suites"]}
    assert "native_ja" in suites and "native_hi" not in suites
    native = suites["native_ja"]
    assert [t["name"] for t in native["tasks"]] == ["native_ja_mc", "native_ja_gen"]
    assert {t["language"] for t in native["tasks"]} == {"ja"} and native["languages"] == ["ja"]
    assert native["data"]["status"] == "local files" and native["items"] > 0


def test_tasks_refuses_a_language_code_that_is_none():
    proc = run_harness("tasks", "--language", "klingonish")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--language klingonish: not a language code" in proc.stderr


def test_the_table_shows_the_tasks_of_each_group_in_80_columns():
    """In an 80-column terminal (a real pseudo-terminal): every line fits, and each group shows
    its tasks under its name."""
    import os
    import pty
    import re
    import subprocess
    import sys

    from ..conftest import REPO

    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "80", "LINES": "40", "TERM": "xterm"}
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "tasks"],
        stdout=follower, stderr=subprocess.PIPE, cwd=REPO, env=env, timeout=600, text=True,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.returncode == 0, proc.stderr
    text = re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode())
    assert "native_hi_{mc, gen}" in text and "smoke_{en, hi, ta," in text
    assert max(len(line) for line in text.splitlines()) <= 80


@pytest.mark.slow
def test_swahili_benchmarks_are_listed_from_lm_evals_registry():
    """The whole registry (thousands of YAML files): `--available --language sw` lists lm-eval's
    Swahili suites though no list of ours names Swahili, each with its data status."""
    proc = run_harness("tasks", "--available", "--language", "sw", "--json")
    assert proc.returncode == 0, proc.stderr
    suites = {s["name"]: s for s in json.loads(proc.stdout)["suites"]}
    for name in ("belebele_swh_Latn", "xnli_sw", "mgsm_direct_sw"):
        assert suites[name]["languages"] == ["sw"], suites[name]
        assert suites[name]["data"]["status"] in ("present", "missing")
    assert not any(s["name"].startswith("native") for s in suites.values())


@pytest.mark.slow
def test_every_standard_benchmark_is_in_its_listed_language():
    """`benchmarks.STANDARD` files each suite under a language; the language read off lm-eval's
    names must agree, for every task of it."""
    from lm_eval.tasks import TaskManager

    from harness.suites.benchmarks import STANDARD

    index = LanguageIndex(TaskManager().task_index)
    wrong = {
        (code, suite, task, index.of(task))
        for code, suites in STANDARD.items()
        for suite in suites
        for task in index.leaves(suite)
        if not matches(index.of(task), code)
    }
    assert not wrong
    assert all(index.leaves(s) for suites in STANDARD.values() for s in suites)
