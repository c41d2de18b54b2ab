"""Build hook (everything else is in pyproject.toml): a wheel carries the built-in suites and
configs, the repository's top-level `tasks/` and `configs/`, as `harness/_builtin/`.

They stay at the top of the repository, where people read and edit them; a wheel has only
`harness/`, so they are copied in at build time. An editable install copies nothing: it runs
from the checkout, where `harness.builtin` finds them beside the package."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUILTIN = ("tasks", "configs")


class BuildWithBuiltins(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        here = Path(__file__).resolve().parent
        for name in BUILTIN:
            target = Path(self.build_lib) / "harness" / "_builtin" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(
                here / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )


setup(cmdclass={"build_py": BuildWithBuiltins})
