"""The score harness reports is the score lm-eval's own `simple_evaluate` gives for the same
model object and task: the same numbers, compared with ==."""

from __future__ import annotations

import pytest

from harness.config import ModelSpec
from harness.evaluation import evaluate_suite, make_lm, task_metrics
from harness.models import load_model, resolve_model_source
from harness.suites import PROJECT_TASKS, SuiteCatalog


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    spec = ModelSpec(id="tiny", path=tiny_model_dir, device="cpu", batch_size=4)
    return spec, load_model(spec, resolve_model_source(spec))


def test_harness_scores_equal_lm_eval_scores(loaded):
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    spec, model = loaded
    catalog = SuiteCatalog()
    ours = evaluate_suite(make_lm(model, spec), "smoke", catalog.local, spec=spec, limit=6)

    theirs = simple_evaluate(
        model=HFLM(pretrained=model.model, tokenizer=model.tokenizer, batch_size=4, device="cpu"),
        tasks=["smoke"],
        task_manager=TaskManager(include_path=str(PROJECT_TASKS)),
        limit=6,
    )

    ours_metrics, their_metrics = task_metrics(ours), task_metrics(theirs)
    assert set(ours_metrics) == set(their_metrics)
    assert "smoke_hi" in ours_metrics and "smoke" in ours_metrics
    for task, entry in their_metrics.items():
        assert entry["metrics"], task
        assert ours_metrics[task]["metrics"] == entry["metrics"], task
        assert ours_metrics[task]["n_samples"] == entry["n_samples"], task
