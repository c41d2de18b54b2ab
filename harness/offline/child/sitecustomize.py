"""Started by Python in child processes of a guarded run (this folder is on their PYTHONPATH):
install the network guard before the child's own code runs, reporting to the parent's log."""

try:
    from harness.offline.guard import install_guard_from_env

    install_guard_from_env()
except ImportError:  # a child running another interpreter without harness installed
    pass
