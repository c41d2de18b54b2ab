"""lm-eval's registry index kept between runs equals the index lm-eval builds itself."""

from __future__ import annotations

from pathlib import Path

from harness.suites import task_index


def registry(root: Path) -> Path:
    """A small registry in lm-eval's layout: a task with an include, a tag, a group."""
    (root / "arc").mkdir(parents=True)
    (root / "arc" / "_base_yaml").write_text("output_type: multiple_choice\ndataset_path: a/b\n")
    (root / "arc" / "easy.yaml").write_text(
        "include: _base_yaml\ntask: easy\ntag: [arcs]\ndataset_name: E\n"
    )
    (root / "arc" / "hard.yaml").write_text("include: _base_yaml\ntask: hard\ntag: arcs\n")
    (root / "group.yaml").write_text("group: both\ntask: [easy, hard]\n")
    return root


def test_cached_index_equals_lm_evals(tmp_path, monkeypatch):
    from lm_eval.tasks._index import TaskIndex

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    root = registry(tmp_path / "tasks")
    built = task_index.registry_index(root)  # no cache yet: lm-eval builds it, harness keeps it
    kept = task_index.registry_index(root)  # from the cache
    theirs = TaskIndex.build([root])
    assert type(kept["easy"]).__name__ == "LazyEntry" and type(built["easy"]).__name__ == "Entry"
    assert kept.keys() == theirs.keys()
    for name, entry in theirs.items():
        mine = kept[name]
        assert (mine.kind, mine.yaml_path, mine.tags, mine.cfg) == (
            entry.kind, entry.yaml_path, entry.tags, entry.cfg,
        ), name  # fmt: skip
    assert kept["easy"].cfg["output_type"] == "multiple_choice"  # the include, resolved


def test_a_changed_file_is_indexed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    root = registry(tmp_path / "tasks")
    task_index.registry_index(root)
    (root / "new.yaml").write_text("task: added\ndataset_path: c/d\n")
    assert "added" in task_index.registry_index(root)


def test_registry_from_cache_merges_local_directories_as_lm_eval_does(tmp_path, monkeypatch):
    from lm_eval.tasks._index import TaskIndex

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    root = registry(tmp_path / "tasks")
    local = tmp_path / "local"
    local.mkdir()
    (local / "mine.yaml").write_text("task: easy\ndataset_path: mine/own\n")  # overrides
    theirs = TaskIndex.build([root, local])
    monkeypatch.setattr(task_index, "registry_root", lambda: root)
    for _ in range(2):  # without, then with the kept index
        with task_index._registry_from_cache():
            mine = TaskIndex.build([root, local])
        assert mine.keys() == theirs.keys()
        assert mine["easy"].cfg["dataset_path"] == "mine/own"
        assert mine["hard"].cfg == theirs["hard"].cfg
    assert TaskIndex.build is not None and "registry_from_cache" not in repr(TaskIndex.build)


def test_language_index_reads_no_task_file_of_a_kept_registry(tmp_path, monkeypatch):
    """Scanning the whole registry for languages uses what the kept index holds."""
    from lm_eval.tasks._index import TaskIndex

    from harness.suites.languages import LanguageIndex

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    root = registry(tmp_path / "tasks")
    task_index.registry_index(root)
    kept = task_index.registry_index(root)
    ours = LanguageIndex(kept)
    assert not any(entry._read for entry in kept.values())  # no file read again
    theirs = LanguageIndex(TaskIndex.build([root]))
    assert ours._configs == theirs._configs and ours._parents == theirs._parents
