"""The shape of etl/: stage packages, no import circles, one import path per name, a light CLI.

The import graph is read from the source (ast), counting every import: top-level, inside
functions and under ``TYPE_CHECKING`` (the lazy ones hid the old circles). An import of a
package's public name (``from etl.lake import open_lake``) is an edge to the module that defines
it (the package ``__init__`` is a lazy surface: :mod:`etl._lazy`).
"""

from __future__ import annotations

import ast
import importlib
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ETL = ROOT / "etl"
STAGES = ("discover", "fetch", "article", "lake")  # the four stages the runner composes
PACKAGES = (*STAGES, "runner", "report")
# packages behind a lazy surface: the stage packages and the shared package etl.config
SURFACED = (*PACKAGES, "config")
# a shared top-level module may import these leaf modules of a package (nothing else)
SHARED_MAY_IMPORT = {("etl.config.settings", "etl.lake.settings")}
SHARED = ("etl.errors", "etl.records", "etl.config", "etl.urls", "etl.schema", "etl.workdir")
HEAVY = ("pyarrow", "trafilatura", "duckdb", "boto3", "httpx")
# modules stay under 300 lines; these were over when the cap came, and may not grow
LONG_MODULES = {
    "etl.lake.s3": 344,
    "etl.urls": 344,
    "etl.article.candidates": 322,
    "etl.discover.documents": 301,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ETL.rglob("*.py"))}


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in PACKAGES else None


def surface_of(module: str) -> str | None:
    """The package (stage or shared) whose lazy surface stands for ``module``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in SURFACED else None


def shared(module: str) -> bool:
    return module in SHARED or module.rpartition(".")[0] in SHARED  # etl.config.<module>


def type_checking_names(init: Path) -> dict[str, str]:
    """name → defining module, from the ``if TYPE_CHECKING:`` imports of a package __init__."""
    names = {}
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module, ast.dump(imp)
                for alias in imp.names:
                    assert alias.asname == alias.name, f"{init}: {alias.name} re-exported as-is"
                    names[alias.name] = imp.module
    return names


SURFACES = {pkg: type_checking_names(ETL / pkg / "__init__.py") for pkg in SURFACED}


def imports(path: Path) -> Iterator[tuple[ast.ImportFrom | ast.Import, str, list[str]]]:
    """Every etl import in ``path``: (node, module named, names)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "etl" or node.module.startswith("etl."):
                yield node, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "etl" or a.name.startswith("etl."):
                    yield node, a.name, []


def targets(module: str, names: list[str]) -> set[str]:
    """The modules an import loads (a package surface name → its defining module)."""
    out = set()
    pkg = module.split(".")[1] if module.count(".") == 1 else None
    for name in names or [""]:
        if name and f"{module}.{name}" in MODULES:
            out.add(f"{module}.{name}")
        elif pkg in SURFACES and name in SURFACES[pkg]:
            out.add(SURFACES[pkg][name])
        else:
            out.add(module)
    return out


def graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = {m: set() for m in MODULES}
    for m, path in MODULES.items():
        if path.name == "__init__.py":
            continue  # lazy surfaces: their TYPE_CHECKING imports load nothing
        for _node, module, names in imports(path):
            g[m] |= targets(module, names) - {m}
    for pkg in SURFACED:  # importing a package runs only its (lazy) __init__
        g[f"etl.{pkg}"] = {"etl._lazy"}
    return g


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = itertools.count()

    def visit(n: str) -> None:
        index[n] = low[n] = next(counter)
        stack.append(n)
        on.add(n)
        for w in g.get(n, ()):
            if w not in index:
                visit(w)
                low[n] = min(low[n], low[w])
            elif w in on:
                low[n] = min(low[n], index[w])
        if low[n] == index[n]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == n:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for n in sorted(g):
        if n not in index:
            visit(n)
    return out


def longest_chain(g: dict[str, set[str]]) -> list[str]:
    memo: dict[str, list[str]] = {}

    def walk(n: str) -> list[str]:
        if n not in memo:
            tails = [walk(w) for w in sorted(g[n])]
            memo[n] = [n, *max(tails, key=len, default=[])]
        return memo[n]

    return max((walk(n) for n in sorted(g)), key=len)


def test_no_import_circles_among_modules() -> None:
    assert cycles(graph()) == []


def test_the_graph_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    # the reader must count an import inside a function and under TYPE_CHECKING
    src = tmp_path / "m.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from etl.records import Page\n"
        "def f():\n    from etl.lake import open_lake\n"
    )
    found = set().union(*(targets(m, n) for _, m, n in imports(src)))
    assert found == {"etl.records", "etl.lake.opener"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]


def test_packages_form_no_circle_and_shared_modules_import_no_stage() -> None:
    g = graph()
    pg: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for m, deps in g.items():
        mine = package_of(m)
        for d in deps:
            theirs = package_of(d)
            if mine and theirs and theirs != mine:
                pg[mine].add(theirs)
            if shared(m) and theirs:
                assert (m, d) in SHARED_MAY_IMPORT, f"shared {m} imports stage module {d}"
    assert cycles(pg) == []


def test_only_the_runner_imports_every_stage() -> None:
    g = graph()
    owners: dict[str, set[str]] = {}
    for m, deps in g.items():
        owner = package_of(m) or m
        owners.setdefault(owner, set()).update(p for d in deps if (p := package_of(d)))
    every = set(STAGES)
    assert {o for o, used in owners.items() if every <= used | {o}} == {"runner"}


def outside_files() -> Iterator[Path]:
    for folder in ("etl", "dags", "scripts", "bench"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_code_outside_a_package_imports_only_its_surface() -> None:
    bad = []
    for path in outside_files():
        me = module_name(path) if path.is_relative_to(ETL) else None
        if path.name == "__init__.py" and me in {"etl", *(f"etl.{p}" for p in SURFACED)}:
            continue
        for node, module, names in imports(path):
            parts = module.split(".")
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if module == "etl" and me != "etl":
                bad.append(f"{where}: from etl import {names} (use the package)")
            elif len(parts) > 2 and parts[1] in SURFACED and surface_of(me or "") != parts[1]:
                bad.append(f"{where}: {module} (import from etl.{parts[1]})")
            elif isinstance(node, ast.Import) and len(parts) > 2:
                bad.append(f"{where}: import {module}")
    assert bad == []


def test_no_module_re_exports_another_modules_names() -> None:
    bad = []
    for m, path in MODULES.items():
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        defined = set()
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Assign):
                defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                defined.add(node.target.id)
        exported = getattr(importlib.import_module(m), "__all__", [])
        bad += [f"{m}.{name}" for name in exported if name not in defined]
    assert bad == []


@pytest.mark.parametrize("pkg", ["etl", *(f"etl.{p}" for p in SURFACED)])
def test_every_public_name_resolves_to_its_module(pkg: str) -> None:
    module = importlib.import_module(pkg)
    names = type_checking_names(MODULES[pkg])
    assert module.__all__ == sorted(names)
    assert sorted(dir(module)) == sorted(set(dir(module)) | set(names))
    for name, where in names.items():
        assert getattr(module, name) is getattr(importlib.import_module(where), name)
        if pkg != "etl":  # a package exports its own names only
            assert surface_of(where) == pkg.partition(".")[2]
    with pytest.raises(AttributeError, match="no attribute"):
        _ = module.no_such_name


def test_the_cli_loads_no_heavy_library_before_a_command_runs() -> None:
    probe = (
        "import json, sys\n"
        "from etl.cli import main\n"
        "sys.argv = ['newsetl', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert "Usage" in done.stdout
    assert sorted(lib for lib in HEAVY if lib in loaded) == []
    assert "etl.runner" not in loaded and "etl.article.process" not in loaded
    assert "rich.progress" not in loaded  # progress bars: only the commands that show one
    # and a command does load what it needs
    probe = "import sys; import etl.cli\nfrom etl.runner import run_interval\n"
    probe += "print('pyarrow' in sys.modules, 'httpx' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.split() == ["True", "True"]


def test_modules_stay_small() -> None:
    sizes = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    assert {m: n for m, n in sizes.items() if n > LONG_MODULES.get(m, 300)} == {}


def figures() -> dict[str, object]:
    """The figures of the issue's note (``python tests/test_architecture.py``)."""
    g = graph()
    chain = longest_chain(g)
    lines = sum(len(p.read_text().splitlines()) for p in MODULES.values())
    return {"modules": len(MODULES), "lines": lines, "circles": cycles(g), "chain": chain}


if __name__ == "__main__":
    f = figures()
    chain = f.pop("chain")
    assert isinstance(chain, list)
    print(json.dumps(f), f"longest chain {len(chain)}:", " -> ".join(chain))
