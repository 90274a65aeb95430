"""Architecture rules checked on the source: who may import Streamlit and which gridwatch modules, docstrings."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "gridwatch"
LEAF_MODULES = {"gridwatch.errors", "gridwatch.crs", "gridwatch.grid"}
UI_ALLOWED = {"gridwatch.services", "gridwatch.ui", "gridwatch.maps", "gridwatch.i18n", "gridwatch.errors"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(source: str, module: str = "", *, is_package: bool = False) -> set[str]:
    """Every module a source imports, anywhere in it, absolute; ``from a import b`` counts ``a.b`` for packages.

    ``from gridwatch import services`` gives ``gridwatch.services``; ``from gridwatch.maps import PALETTE``
    gives ``gridwatch.maps`` (and ``gridwatch.maps.PALETTE``, harmless: no module has that name).
    """
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _gridwatch_imports(path: Path) -> set[str]:
    """The gridwatch modules a file imports (``from gridwatch import x`` resolved to ``gridwatch.x``)."""
    names = imported_modules(path.read_text(encoding="utf-8"), _module_name(path),
                             is_package=path.name == "__init__.py")
    modules = {n for n in names if n == "gridwatch" or n.startswith("gridwatch.")}
    # keep the deepest real module of each name: gridwatch.maps.PALETTE -> gridwatch.maps
    out = set()
    for name in modules:
        parts = name.split(".")
        while len(parts) > 1 and not _is_module(parts):
            parts = parts[:-1]
        out.add(".".join(parts))
    return out - {"gridwatch"}  # the package itself only holds __version__


def _is_module(parts: list[str]) -> bool:
    base = REPO.joinpath(*parts)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imports_streamlit(path: Path) -> bool:
    names = imported_modules(path.read_text(encoding="utf-8"), _module_name(path))
    return any(n == "streamlit" or n.startswith("streamlit.") for n in names)


PACKAGE_FILES = sorted(PACKAGE.rglob("*.py"))
LAYER_FILES = sorted([*PACKAGE.glob("layers/*.py"), *REPO.glob("layers/*.py")])
UI_FILES = sorted([*REPO.glob("screens/*.py"), REPO / "app.py"])


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


# -- the import scanner itself ----------------------------------------------------------------


def test_the_import_scanner_sees_every_form():
    source = (
        "import streamlit as st\n"
        "import gridwatch.storage\n"
        "from gridwatch import services, ui\n"
        "from gridwatch.maps import PALETTE\n"
        "from . import crs\n"
        "from ..errors import NotFound\n"
        "def f():\n    import pydeck\n"
    )
    names = imported_modules(source, "gridwatch.layers.air", is_package=False)
    assert {"streamlit", "gridwatch.storage", "gridwatch.services", "gridwatch.ui", "gridwatch.maps",
            "gridwatch.layers.crs", "gridwatch.errors", "pydeck"} <= names


def test_the_gridwatch_import_resolver_keeps_modules():
    imports = _gridwatch_imports(REPO / "screens" / "overview.py")
    assert "gridwatch.services" in imports and "gridwatch.maps" in imports
    assert not any(name.endswith(("PALETTE", "cells_svg")) for name in imports)


# -- (a) Streamlit only in gridwatch/ui.py -----------------------------------------------------


def test_only_ui_imports_streamlit():
    importers = [_rel(p) for p in PACKAGE_FILES if _imports_streamlit(p)]
    assert importers == ["gridwatch/ui.py"]


# -- (b) layers use only the leaf modules ----------------------------------------------------


@pytest.mark.parametrize(
    "path", LAYER_FILES or [pytest.param(None, marks=pytest.mark.skip(reason="no layers/*.py modules exist yet"))],
    ids=lambda p: _rel(p) if p else "none")
def test_layers_import_only_leaf_modules(path):
    imports = _gridwatch_imports(path)
    own_package = {n for n in imports if n.startswith("gridwatch.layers")}
    assert imports - own_package <= LEAF_MODULES, f"{_rel(path)} imports {sorted(imports - LEAF_MODULES)}"
    assert not _imports_streamlit(path)


# -- (c) the app and its pages are thin ----------------------------------------------------------


@pytest.mark.parametrize("path", UI_FILES, ids=_rel)
def test_pages_import_only_the_ui_facing_modules(path):
    assert path.is_file()
    imports = _gridwatch_imports(path)
    assert imports, f"{_rel(path)} uses nothing of gridwatch"
    assert imports <= UI_ALLOWED, f"{_rel(path)} imports {sorted(imports - UI_ALLOWED)}"


# -- (d) module docstrings ---------------------------------------------------------------------


def _docstring_problem(path: Path) -> str | None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree, clean=False)
    if doc is None:
        return "no module docstring"
    lines = doc.split("\n")
    if not lines[0].strip() or lines[0] != lines[0].strip():
        return "the docstring does not start with its summary line"
    if len(lines) > 1 and lines[1].strip():
        return "the summary runs over more than one line"
    if not lines[0].endswith("."):
        return "the summary line does not end with a period"
    return None


@pytest.mark.parametrize("path", [p for p in PACKAGE_FILES if p.stat().st_size], ids=_rel)
def test_every_module_starts_with_a_one_line_docstring(path):
    assert _docstring_problem(path) is None, f"{_rel(path)}: {_docstring_problem(path)}"


def test_empty_package_markers_have_a_docstring_too():
    empty = [_rel(p) for p in PACKAGE_FILES if not p.stat().st_size]
    assert empty == [], empty


# -- (e) one door for task state, one responsibility chain, the policy passed in -------------------------------------

import re  # noqa: E402 - this section's own import, kept with it

#: SQL and bulk inserts that write task state or its history
TASK_WRITES = re.compile(r"INSERT\s+INTO\s+(?:task_events|tasks)\b|UPDATE\s+(?:task_events|tasks)\b"
                         r"|DELETE\s+FROM\s+(?:task_events|tasks)\b|insert_arrow\(\s*[\"'](?:task_events|tasks)[\"']",
                         re.IGNORECASE)
CHAIN_ROLES = {"inspector", "grid_member", "grid_leader", "supervisor", "unit_head"}
CHAIN_LEVELS = {"cell", "village", "township", "county"}


def _sources(*, but: str) -> dict[str, str]:
    return {_rel(p): p.read_text(encoding="utf-8") for p in PACKAGE_FILES if _rel(p) != but}


def test_the_scan_for_task_writes_sees_sql_and_bulk_inserts():
    for text in ('"INSERT INTO task_events (task_id) VALUES (?)"', "'update tasks set state = ?'",
                 'store.insert_arrow("tasks", table)', "store.insert_arrow( 'task_events', t)"):
        assert TASK_WRITES.search(text), text
    for text in ('"UPDATE tasks_view SET x"', '"SELECT * FROM task_events"', 'insert_arrow("task_changes", t)'):
        assert not TASK_WRITES.search(text), text


def test_only_workflow_writes_task_state_and_its_events():
    writers = sorted(path for path, text in _sources(but="gridwatch/workflow.py").items() if TASK_WRITES.search(text))
    assert writers == [], f"task state is written outside gridwatch/workflow.py: {writers}"
    assert TASK_WRITES.search((PACKAGE / "workflow.py").read_text(encoding="utf-8"))


def test_only_the_policy_module_builds_a_dispatch_policy():
    builders = sorted(path for path, text in _sources(but="gridwatch/policy.py").items()
                      if re.search(r"\bDispatchPolicy\(", text))
    assert builders == [], f"DispatchPolicy( outside gridwatch/policy.py: {builders}; pass the policy in"


def _chain_definitions(tree: ast.AST) -> list[int]:
    """Lines of a tree that order the responsibility chain.

    A table named like one, a rank of chain roles (a mapping of two or more of them to numbers), or a (role,
    level) step.
    """
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id in ("CHAIN", "_CHAIN", "_ROLE_RANK", "_REACH") for t in targets):
                found.append(node.lineno)
        elif isinstance(node, ast.Dict):
            ranked = [k.value for k, v in zip(node.keys, node.values, strict=True)
                      if isinstance(k, ast.Constant) and k.value in CHAIN_ROLES
                      and isinstance(v, ast.Constant) and isinstance(v.value, (int, float))]
            if len(ranked) >= 2:
                found.append(node.lineno)
        elif isinstance(node, ast.Tuple) and len(node.elts) == 2:
            values = {e.value for e in node.elts if isinstance(e, ast.Constant)}
            if values & CHAIN_ROLES and values & CHAIN_LEVELS:
                found.append(node.lineno)
    return sorted(set(found))


def test_the_chain_scan_sees_the_three_forms():
    tree = ast.parse('_CHAIN = ()\nrank = {"inspector": 0, "grid_member": 1}\nsteps = [("grid_leader", "village")]\n')
    assert _chain_definitions(tree) == [1, 2, 3]


def test_the_responsibility_chain_is_ordered_in_org_only():
    others = {path: lines for path, text in _sources(but="gridwatch/org.py").items()
              if (lines := _chain_definitions(ast.parse(text)))}
    assert others == {}, f"the chain's order is defined outside gridwatch/org.py (org.CHAIN): {others}"
    assert _chain_definitions(ast.parse((PACKAGE / "org.py").read_text(encoding="utf-8")))
