"""Suites: lm-eval tasks and groups, found locally or in lm-eval's registry."""

from harness.suites.catalog import PROJECT_TASKS, SuiteCatalog, SuiteInfo
from harness.suites.jsonl import check_jsonl, load_local_jsonl

__all__ = ["PROJECT_TASKS", "SuiteCatalog", "SuiteInfo", "check_jsonl", "load_local_jsonl"]
