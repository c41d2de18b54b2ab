"""Started by Python in child processes of a guarded run (this folder is on their PYTHONPATH):
install the network guard before the child's own code runs, reporting to the parent's log,
then run the sitecustomize this one shadows, if there is one further along sys.path."""

import importlib.util
import os
import sys

try:
    from harness.offline.guard import install_guard_from_env

    install_guard_from_env()
except ImportError:  # a child running another interpreter without harness installed
    pass

_HERE = os.path.dirname(os.path.abspath(__file__))
for _entry in sys.path:
    _candidate = os.path.join(_entry or ".", "sitecustomize.py")
    if os.path.abspath(_entry or ".") != _HERE and os.path.isfile(_candidate):
        _spec = importlib.util.spec_from_file_location("_shadowed_sitecustomize", _candidate)
        if _spec is not None and _spec.loader is not None:
            _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
        break
