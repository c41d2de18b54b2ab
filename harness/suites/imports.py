"""Which packages a task's Python module imports, and whether the import surely runs.

lm-eval imports a task's `!function` module when it builds the task, after the model has
loaded; a package missing there fails the run late. Imports are written many ways: at the top,
inside `try:` with a message and `raise` (japanese_leaderboard), inside a function, under an
`if`. `import_sites` reads them all from the module's AST, without executing it, and says which
surely run: the top of the module, a `try:` whose handler raises again, a function the task
names (and what that function uses). The rest may run, and is for `validate` to mention.
`install_hint` says what to pip install, naming lm-eval's extra when one carries the package.
"""

from __future__ import annotations

import ast

_IMPORT_NAMES = {
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "PIL": "pillow",
    "cv2": "opencv-python",
    "bs4": "beautifulsoup4",
    "MeCab": "mecab-python3",
    "Levenshtein": "levenshtein",
    "google": "protobuf",
}
"""Import names whose distribution is named otherwise (the common cases in task code)."""


def install_hint(module: str) -> str:
    """What to pip install for import name `module`: its distribution, and the lm-eval extra
    that carries it when there is one (read from lm-eval's own metadata)."""
    import importlib.metadata
    import re

    dist = _IMPORT_NAMES.get(module, module)
    hint = f"pip install {dist}"
    norm = re.sub(r"[-_.]+", "-", dist).lower()
    try:
        declared = importlib.metadata.requires("lm_eval") or []
    except importlib.metadata.PackageNotFoundError:
        declared = []
    for line in declared:
        requirement, _, marker = line.partition(";")
        extra = re.search(r"extra\s*==\s*[\"']([^\"']+)", marker)
        name = re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0]
        if extra and re.sub(r"[-_.]+", "-", name).lower() == norm:
            return f'{hint} (or pip install "lm_eval[{extra.group(1)}]", which carries it)'
    return hint


def import_sites(tree: ast.Module, functions: set[str] | None) -> list[tuple[str, str, bool]]:
    """(module, place, needed) for every absolute import in `tree`. Needed: it runs when lm-eval
    loads the module (at the top, or in a `try:` whose handler raises again) or when the task
    calls a function it names (`functions`, and the functions and classes those use). Not
    needed: a `try:` with a fallback, an `if` at module level, a function nobody named."""
    units = {
        node.name: node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    called = _reachable(units, functions or set())
    sites: list[tuple[str, str, bool]] = []

    def visit(nodes, optional: bool, unit: str | None, conditional: bool) -> None:
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module]
                    if node.level == 0 and node.module
                    else []
                )
                place = f"in {unit}()" if unit is not None else "when the module loads"
                if optional:
                    place, needed = f"{place}, in a try block with a fallback", False
                elif conditional:
                    place, needed = f"{place}, under an if", False
                else:
                    needed = unit is None or unit in called
                sites.extend((name, place, needed) for name in names)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(node.body, optional, unit or node.name, conditional)
            elif isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
                visit(node.body, optional or _has_fallback(node), unit, conditional)
                for part in (*node.handlers, node.orelse, node.finalbody):
                    visit(part.body if isinstance(part, ast.ExceptHandler) else part,
                          optional, unit, conditional)  # fmt: skip
            elif isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    visit(node.body, optional, unit, True)
                visit(node.orelse, optional, unit, True)
            elif isinstance(node, (ast.With, ast.AsyncWith, ast.For, ast.While)):
                visit(node.body, optional, unit, conditional)

    visit(tree.body, False, None, False)
    return sites


_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _has_fallback(node: ast.Try) -> bool:
    """Whether a failed import inside `node` is caught and not raised again."""
    for handler in node.handlers:
        caught = handler.type
        names = caught.elts if isinstance(caught, ast.Tuple) else [caught] if caught else []
        catches = caught is None or any(
            isinstance(n, ast.Name) and n.id in _IMPORT_ERRORS for n in names
        )
        if catches and not any(isinstance(n, ast.Raise) for n in ast.walk(handler)):
            return True
    return False


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _reachable(units: dict[str, ast.AST], start: set[str]) -> set[str]:
    """The module-level functions and classes `start` uses, directly or through others."""
    seen: set[str] = set()
    queue = [name for name in start if name in units]
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(units[name]):
            used = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
            if isinstance(used, str) and used in units and used not in seen:
                queue.append(used)
    return seen
