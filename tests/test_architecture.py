"""Architecture rules checked on the source: who may import Streamlit and which gridwatch modules, docstrings."""

from __future__ import annotations

import ast
import re
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
UI_FILES = sorted([*REPO.glob("pages/*.py"), REPO / "app.py"])


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
    imports = _gridwatch_imports(REPO / "pages" / "overview.py")
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


# -- (c2) rooms small enough to hold in one's head; every service names its actor ----------------

#: no module of the package may grow past this many lines; a service module past ``SERVICE_LINES``
MAX_LINES = 1000
SERVICE_LINES = 600
#: the service modules (``_common`` is their toolkit: actors, scope checks, the audit entry)
SERVICE_FILES = sorted(p for p in (PACKAGE / "services").glob("*.py") if not p.name.startswith("_"))
#: the services that make an actor (signing in) or that the sign-in page shows before there is one
BEFORE_SIGN_IN = {"sign_in", "sign_in_external", "sign_out", "current_user", "is_demo", "require_region_set",
                  "cookie_grant", "take_cookie_grant"}


@pytest.mark.parametrize("path", PACKAGE_FILES, ids=_rel)
def test_no_module_is_a_whole_house(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    limit = SERVICE_LINES if path.parent.name == "services" else MAX_LINES
    assert lines <= limit, f"{_rel(path)} has {lines} lines (at most {limit}): split it by domain"


def test_services_is_a_package_of_domain_modules():
    assert not (PACKAGE / "services.py").exists()
    assert len(SERVICE_FILES) >= 8


def _service_functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            params = node.args.posonlyargs + node.args.args
            if params and params[0].arg == "store":
                yield node, params


@pytest.mark.parametrize("path", SERVICE_FILES, ids=_rel)
def test_every_service_requires_an_actor(path):
    """A service reading or changing the store takes the acting user (or a system actor) second, with no default,
    so no call can skip the scope check by leaving it out."""
    wrong = []
    for node, params in _service_functions(path):
        if node.name in BEFORE_SIGN_IN:
            continue
        second = params[1] if len(params) > 1 else None
        defaults_from = len(params) - len(node.args.defaults)
        annotation = ast.unparse(second.annotation) if second is not None and second.annotation else ""
        if (second is None or second.arg not in ("actor", "user") or params.index(second) >= defaults_from
                or annotation not in ("Actor", "auth.User")):
            wrong.append(node.name)
    assert not wrong, f"{_rel(path)}: services without a required actor second: {wrong}"


def test_no_service_trusts_a_plain_string_as_its_actor():
    from gridwatch import services
    from gridwatch.storage import open_store

    with open_store(":memory:") as store:
        for call in (lambda: services.grid_stats(store, None), lambda: services.grid_stats(store, "cli"),
                     lambda: services.fire_summary(store, "admin")):
            with pytest.raises(TypeError, match="actor"):
                call()


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


# -- (e) pages: no h3 or storage, no time zone, no task states of their own --------------------------------------
#
# Pages take Beijing times, the task states and kinds they offer and cell geometry from gridwatch.services
# (gridwatch/services/display.py); the zone is named only in gridwatch/policy.py. Tests and benchmarks may name
# the zone: they state expected values independently of the code they check.

PAGE_FILES = sorted(REPO.glob("pages/*.py"))
ZONE = "Asia/" + "Shanghai"
#: modules that still name the zone themselves until they take it from gridwatch.policy (remove each when it does)
ZONE_NOT_YET_FROM_POLICY: set[str] = set()


def _repository_python() -> list[Path]:
    """The repository's Python files outside tests/ and benchmarks/ (and outside hidden folders such as .venv)."""
    files = []
    for entry in sorted(REPO.iterdir()):
        if entry.name.startswith(".") or entry.name in {"tests", "benchmarks"}:
            continue
        if entry.is_dir():
            files += sorted(p for p in entry.rglob("*.py") if not any(part.startswith(".") for part in p.parts))
        elif entry.suffix == ".py":
            files.append(entry)
    return files


def _task_words() -> set[str]:
    from gridwatch.tasks import Kind, State

    return {s.value for s in State} | {k.value for k in Kind}


def _task_literals(source: str) -> list[str]:
    """Task states and kinds spelled in a source, except as a row's key (``row["rejected"]``) or a dict key."""
    tree = ast.parse(source)
    keys = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            keys.add(id(node.slice))
        elif isinstance(node, ast.Dict):
            keys.update(id(k) for k in node.keys if k is not None)
    words = _task_words()
    return [f"line {n.lineno}: {n.value!r}" for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and n.value in words and id(n) not in keys]


@pytest.mark.parametrize("path", UI_FILES, ids=_rel)
def test_pages_import_neither_h3_nor_the_storage(path):
    names = imported_modules(path.read_text(encoding="utf-8"), _module_name(path))
    banned = sorted(n for n in names if n.split(".")[0] in {"h3", "h3ronpy"}
                    or n == "gridwatch.storage" or n.startswith("gridwatch.storage."))
    assert not banned, f"{_rel(path)} imports {banned}; take it from gridwatch.services"


@pytest.mark.parametrize("path", [
    pytest.param(p, marks=pytest.mark.xfail(reason="still names the zone; to take it from gridwatch.policy"))
    if _rel(p) in ZONE_NOT_YET_FROM_POLICY else p
    for p in _repository_python() if _rel(p) != "gridwatch/policy.py"], ids=_rel)
def test_only_the_policy_names_the_time_zone(path):
    assert ZONE not in path.read_text(encoding="utf-8"), f"{_rel(path)} names {ZONE}; use gridwatch.policy"


def test_the_zone_check_reads_the_repository():
    files = {_rel(p) for p in _repository_python()}
    assert {"app.py", "gridwatch/policy.py", "pages/assign.py"} <= files
    assert ZONE_NOT_YET_FROM_POLICY <= files, sorted(ZONE_NOT_YET_FROM_POLICY - files)
    assert not any(f.startswith(("tests/", "benchmarks/", ".")) for f in files)


@pytest.mark.parametrize("path", PAGE_FILES, ids=_rel)
def test_pages_spell_no_task_states_or_kinds(path):
    found = _task_literals(path.read_text(encoding="utf-8"))
    assert not found, f"{_rel(path)} spells task states or kinds ({', '.join(found)}); use gridwatch.services"


def test_the_task_literal_check_sees_choices_comparisons_and_calls():
    source = ('x = ["", "assigned", "fire_check"]\nif s == "rejected":\n    f(s, "in_progress")\n'
              'n = row["rejected"]\ncolumns = {"rejected": "Rejected"}\n')
    assert sorted(_task_literals(source)) == ["line 1: 'assigned'", "line 1: 'fire_check'", "line 2: 'rejected'",
                                              "line 3: 'in_progress'"]


@pytest.mark.parametrize("path", PAGE_FILES, ids=_rel)
def test_every_page_runs_inside_app_py(path):
    """The first thing a page does is make sure it runs through app.py (sign-in, language, the role's menu)."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    first = next(node for node in body if not isinstance(node, (ast.Import, ast.ImportFrom))
                 and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)))
    assert ast.unparse(first) == "ui.through_app()", f"{_rel(path)} starts with {ast.unparse(first)!r}"
# -- (e) no import cycles among gridwatch modules --------------------------------------------------
#
# The graph has an edge from a module to every gridwatch module it imports anywhere in its file
# (:func:`_gridwatch_imports`): at the top, inside functions, and under ``if TYPE_CHECKING:`` too. An import
# moved into a function or under TYPE_CHECKING still makes the two modules depend on each other's design; those
# are the usual ways a circle is hidden rather than removed, so they count.


def import_graph(paths: list[Path]) -> dict[str, set[str]]:
    """Each module of ``paths`` and the other gridwatch modules it imports."""
    graph = {_module_name(path): set() for path in paths}
    for path in paths:
        name = _module_name(path)
        graph[name] = {m for m in _gridwatch_imports(path) if m != name and m in graph}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each group of modules that import each other, e.g. ``[a, b, a]``; [] when none.

    The groups are the strongly connected components of more than one module (Tarjan's algorithm).
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    cycles = []
    for group in groups:  # the shortest way from the group's first module back to itself, inside the group
        start = min(group)
        paths = {start: [start]}
        queue = [start]
        while queue:
            node = queue.pop(0)
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    cycles.append([*paths[node], start])
                    queue = []
                    break
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    queue.append(nxt)
    return sorted(cycles)


def test_the_cycle_finder_names_each_circle_once():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}, "g": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c", "a"], ["e", "f", "e"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_imports_inside_functions_and_for_type_checking_count():
    source = ("from typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from gridwatch import audit\n"
              "def f():\n    from gridwatch.storage import open_store\n")
    assert {"gridwatch.audit", "gridwatch.storage"} <= imported_modules(source, "gridwatch.x")


def test_no_gridwatch_modules_import_each_other_in_a_circle():
    cycles = import_cycles(import_graph(PACKAGE_FILES))
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_storage_does_not_know_the_audit_seal():
    storage = [p for p in PACKAGE_FILES if p.is_relative_to(PACKAGE / "storage")]
    assert storage and not any("gridwatch.audit" in _gridwatch_imports(p) for p in storage)


# -- (f) coordinate order in names -------------------------------------------------------------------
#
# Public functions name separate coordinates ``lat``/``lng`` (``lats``/``lngs``, a digit after them for a second
# point), latitude before longitude, and arrays whose coordinates run longitude first (GeoJSON, shapely) ``lng_lat``
# or ``xy`` (``…_lng_lat``, ``…_xy``); a flat latitude-first list is ``lat_lng``. Names that leave the order to
# memory are refused: ``x``/``y``, ``lon``, ``latitude``/``longitude``, ``coords``, ``lnglat``, and bare pairs such
# as ``a, b`` in a function about coordinates. (``x_field``, ``lat_column``: names of something else.)

AMBIGUOUS_COORDINATE = re.compile(
    r"(x|y|xs|ys|lon|lons|long|longs|latitude|latitudes|longitude|longitudes|coord|coords|coordinates"
    r"|lnglat|lonlat|latlng|latlon|lat_lon|lon_lat)\d?")
BARE_PAIR = {"a", "b", "p", "q", "u", "v", "p1", "p2"}
ABOUT_COORDINATES = re.compile(r"\b(lat|lng|latitude|longitude|coordinate|coordinates|degrees)\b", re.IGNORECASE)


def _public_functions(path: Path):
    """``(qualified name, function node)`` of the public functions and methods of a module (constructors too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def walk(body, prefix):
        for node in body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                yield from walk(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if not node.name.startswith("_") or node.name == "__init__":
                    yield f"{prefix}{node.name}", node

    yield from walk(tree.body, "")


def coordinate_name_problems(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """What is ambiguous about a function's coordinate parameters ([] when nothing)."""
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    problems = [f"{n!r} leaves the axis order to memory" for n in names if AMBIGUOUS_COORDINATE.fullmatch(n)]
    doc = ast.get_docstring(node) or ""
    if len(BARE_PAIR.intersection(names)) >= 2 and ABOUT_COORDINATES.search(doc):
        problems.append(f"{sorted(BARE_PAIR.intersection(names))} are coordinates without their names")
    for suffix in ("", "s", "1", "2"):
        if f"lat{suffix}" in names and f"lng{suffix}" in names and names.index(f"lng{suffix}") < names.index(
                f"lat{suffix}"):
            problems.append(f"lng{suffix} comes before lat{suffix}")
    return problems


def test_the_coordinate_name_check_refuses_ambiguity():
    def problems(source: str) -> list[str]:
        return coordinate_name_problems(ast.parse(source).body[0])

    assert problems("def f(lat, lng, lat_lng, xy, convex_xy, geoms_or_lng_lat, x_field, lats, lngs): pass") == []
    assert problems("def f(x, y): pass") and problems("def f(lon, lat): pass") and problems("def f(coords): pass")
    assert problems("def f(lng, lat): pass") == ["lng comes before lat"]
    assert problems("def f(a, b):\n    'Distance between two coordinates.'") and not problems("def f(a, b): pass")


@pytest.mark.parametrize("path", [p for p in PACKAGE_FILES if p.stat().st_size], ids=_rel)
def test_public_functions_name_their_coordinates_lat_lng(path):
    problems = [f"{name}: {problem}" for name, node in _public_functions(path)
                for problem in coordinate_name_problems(node)]
    assert problems == [], f"{_rel(path)}: " + "; ".join(problems)
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


#: SQL that writes problem state or its history (the problem register's one door is gridwatch/problems.py)
PROBLEM_WRITES = re.compile(r"INSERT\s+INTO\s+(?:problem_events|problems)\b|UPDATE\s+(?:problem_events|problems)\b"
                            r"|DELETE\s+FROM\s+(?:problem_events|problems)\b"
                            r"|insert_arrow\(\s*[\"'](?:problem_events|problems)[\"']", re.IGNORECASE)


def test_only_the_problem_register_writes_problems_and_their_events():
    assert PROBLEM_WRITES.search('"UPDATE problems SET state = ?"') and not PROBLEM_WRITES.search('"FROM problems p"')
    writers = sorted(path for path, text in _sources(but="gridwatch/problems.py").items()
                     if PROBLEM_WRITES.search(text))
    assert writers == [], f"problem state is written outside gridwatch/problems.py: {writers}"


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
