"""Standard lm-eval benchmarks run from local copies of their hub datasets: a `data_dir:`,
the hub cache, or the datasets cache. Each copy is written here in the benchmark's own format
(the files `hf download` would bring), and lm-eval's own task definitions read it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.suites.sources import DataNeed, is_hub_dataset, locate

from ..conftest import install_in_hf_cache, only_run_dir, run_harness, write_config

BELEBELE_README = """---
configs:
- config_name: hin_Deva
  data_files:
  - split: test
    path: data/hin_Deva.jsonl
---
# belebele (five items written for harness's tests, in the dataset's format)
"""
XNLI_README = """---
configs:
- config_name: hi
  data_files:
  - {split: train, path: hi/train.jsonl}
  - {split: validation, path: hi/validation.jsonl}
  - {split: test, path: hi/test.jsonl}
---
"""


def write_belebele(directory: Path) -> Path:
    """facebook/belebele as the hub holds it: a README naming the configs, one JSONL each."""
    (directory / "data").mkdir(parents=True)
    (directory / "README.md").write_text(BELEBELE_README, encoding="utf-8")
    rows = [
        {
            "link": "https://example.org/x",
            "question_number": i,
            "flores_passage": f"गंगा भारत की एक बड़ी नदी है। यह हिमालय से निकलती है। ({i})",
            "question": "गंगा कहाँ से निकलती है?",
            "mc_answer1": "हिमालय",
            "mc_answer2": "विंध्याचल",
            "mc_answer3": "अरावली",
            "mc_answer4": "नीलगिरि",
            "correct_answer_num": "1",
            "dialect": "hin_Deva",
            "ds": "2023-05-03",
        }
        for i in range(5)
    ]
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (directory / "data" / "hin_Deva.jsonl").write_text(lines, encoding="utf-8")
    return directory


def write_xnli(directory: Path) -> Path:
    """facebook/xnli, config hi, with three splits."""
    (directory / "hi").mkdir(parents=True)
    (directory / "README.md").write_text(XNLI_README, encoding="utf-8")
    rows = [
        {"premise": "राम घर गया।", "hypothesis": "राम बाहर है।", "label": 2},
        {"premise": "आज बारिश हो रही है।", "hypothesis": "मौसम गीला है।", "label": 0},
        {"premise": "दुकान बंद है।", "hypothesis": "आज रविवार है।", "label": 1},
    ]
    for split in ("train", "validation", "test"):
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (directory / "hi" / f"{split}.jsonl").write_text(text, encoding="utf-8")
    return directory


def fill_datasets_cache(copy: Path, cache: Path, path: str, name: str) -> None:
    """Leave `cache` as an earlier online `load_dataset(path, name)` leaves it: load the copy
    (in a child process, with the cache pointed there), then name the entry as the hub's."""
    import subprocess
    import sys

    code = f"import datasets; datasets.load_dataset({str(copy)!r}, {name!r})"
    env = {"HF_DATASETS_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    (cache / copy.name).rename(cache / path.replace("/", "___"))


@pytest.fixture
def empty_caches(tmp_path) -> dict[str, str]:
    """Hugging Face caches that hold nothing, so only what a test puts there is found."""
    return {
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_DATASETS_CACHE": str(tmp_path / "datasets"),
    }


@pytest.fixture
def cached_copies(tmp_path, empty_caches) -> dict[str, str]:
    """belebele in the hub cache (as `hf download` leaves it), xnli in the datasets cache (as
    an earlier `load_dataset` leaves it); the environment that points at both."""
    copy = write_belebele(tmp_path / "download" / "belebele")
    hub = Path(empty_caches["HF_HUB_CACHE"])
    install_in_hf_cache(copy, hub, "facebook/belebele", "c" * 40, repo_type="dataset")
    datasets_cache = Path(empty_caches["HF_DATASETS_CACHE"])
    fill_datasets_cache(write_xnli(tmp_path / "xnli"), datasets_cache, "facebook/xnli", "hi")
    return empty_caches


def test_a_benchmark_runs_from_data_dir(tmp_path, tiny_model_dir, empty_caches):
    write_belebele(tmp_path / "data" / "facebook" / "belebele")
    config = write_config(
        tmp_path,
        {
            "name": "belebele",
            "data_dir": "data",
            "models": [{"id": "tiny", "path": str(tiny_model_dir), "device": "cpu"}],
            "suites": ["belebele_hin_Deva"],
        },
    )
    proc = run_harness("run", str(config), "--output", str(tmp_path / "out"), env=empty_caches)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((only_run_dir(tmp_path / "out") / "results.json").read_text())
    task = results["models"]["tiny"]["suites"]["belebele_hin_Deva"]["tasks"]["belebele_hin_Deva"]
    assert task["n_samples"]["effective"] == 5 and "acc,none" in task["metrics"]
    suite = results["suites"]["belebele_hin_Deva"]
    assert suite["languages"] == {"belebele_hin_Deva": "hi"}
    attested = {Path(f["path"]).name for f in suite["data_files"]}
    assert attested == {"README.md", "hin_Deva.jsonl"}
    assert results["offline"]["attempts"] == []


def test_a_missing_benchmark_is_refused_before_loading(tmp_path, tiny_model_dir, empty_caches):
    config = write_config(
        tmp_path,
        {
            "name": "missing",
            "models": [{"id": "tiny", "path": str(tiny_model_dir), "device": "cpu"}],
            "suites": ["belebele_hin_Deva", "xnli_hi"],
        },
    )
    proc = run_harness("run", str(config), "--output", str(tmp_path / "out"), env=empty_caches)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "needs facebook/belebele (config hin_Deva)" in proc.stderr
    assert "needs facebook/xnli (config hi)" in proc.stderr
    assert "hf download --repo-type dataset" in proc.stderr and "Traceback" not in proc.stderr
    assert "loading" not in proc.stderr and not (tmp_path / "out").exists()


def test_benchmarks_run_from_the_hub_and_datasets_caches(tmp_path, tiny_model_dir, cached_copies):
    config = write_config(
        tmp_path,
        {
            "name": "cached",
            "models": [{"id": "tiny", "path": str(tiny_model_dir), "device": "cpu"}],
            "suites": ["belebele_hin_Deva", "xnli_hi"],
        },
    )
    proc = run_harness("run", str(config), "--output", str(tmp_path / "out"), env=cached_copies)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((only_run_dir(tmp_path / "out") / "results.json").read_text())
    suites = results["models"]["tiny"]["suites"]
    assert suites["belebele_hin_Deva"]["tasks"]["belebele_hin_Deva"]["n_samples"]["effective"] == 5
    assert suites["xnli_hi"]["tasks"]["xnli_hi"]["n_samples"]["effective"] == 3


@pytest.mark.slow
def test_tasks_available_tells_present_from_missing(cached_copies):
    proc = run_harness("tasks", "--available", "--language", "hi", env=cached_copies)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("│")[1].strip(): line for line in proc.stdout.splitlines() if "│" in line}
    assert "present (hub cache)" in rows["belebele_hin_Deva"]
    assert "present (datasets cache)" in rows["xnli_hi"]
    assert "missing 1 of 1: CohereForAI/Global-MMLU (config hi)" in rows["global_mmlu_full_hi"]
    assert "missing" in rows["xstorycloze_hi"] and "local files" in rows["native_hi"]


def test_locate_prefers_data_dir_and_follows_revisions(tmp_path, monkeypatch):
    from huggingface_hub import constants

    hub = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    copy = write_belebele(tmp_path / "dl" / "belebele")
    install_in_hf_cache(copy, hub, "facebook/belebele", "e" * 40, repo_type="dataset")
    need = DataNeed("facebook/belebele", "hin_Deva")
    assert locate(need, None).where == "hub cache"
    assert locate(DataNeed("facebook/belebele", "hin_Deva", "e" * 40), None).present
    assert not locate(DataNeed("facebook/belebele", "hin_Deva", "f" * 40), None).present
    assert not locate(DataNeed("facebook/belebele", "hin_Deva", "v2"), None).present
    data_dir = tmp_path / "data"
    write_belebele(data_dir / "facebook" / "belebele")
    found = locate(need, data_dir)
    assert found.where == "data_dir" and found.directory == data_dir / "facebook" / "belebele"


@pytest.mark.parametrize(
    ("path", "hub"),
    [("facebook/belebele", True), ("xnli", True), ("json", False), ("parquet", False),
     ("/abs/dir", False), ("a/b/c", False)],
)  # fmt: skip
def test_is_hub_dataset(path, hub):
    assert is_hub_dataset(path) is hub


def test_data_dir_on_the_command_line(tmp_path, tiny_model_dir, empty_caches):
    write_belebele(tmp_path / "copies" / "facebook" / "belebele")
    config = write_config(
        tmp_path,
        {
            "name": "cli",
            "models": [{"id": "tiny", "path": str(tiny_model_dir), "device": "cpu"}],
            "suites": ["belebele_hin_Deva"],
        },
    )
    assert run_harness("validate", str(config), env=empty_caches).returncode == 2
    proc = run_harness(
        "validate", str(config), "--data-dir", str(tmp_path / "copies"), env=empty_caches
    )
    assert proc.returncode == 0, proc.stderr
