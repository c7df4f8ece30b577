"""The package's layering: no import cycle anywhere in src/ (module-level or deferred imports inside
functions alike), and the report and the study stay on their sides of it."""
import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """{module: the vaelab modules it imports}, from every import statement (including those inside
    functions and ``TYPE_CHECKING`` blocks are left out: they never run)."""
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                for child in node.body for n in ast.walk(child)}
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for t in targets:
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != mod and t.startswith("vaelab"):
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_src():
    graph = import_graph()
    assert len(graph) > 50 and "vaelab.study.execute" in graph["vaelab.commands.compare"] | {
        t for m in graph["vaelab.commands.compare"] for t in graph[m]}
    assert cycles(graph) == []


def test_layers():
    graph = import_graph()
    below_study = {m for m in graph if m.startswith(("vaelab.metrics", "vaelab.models", "vaelab.training", "vaelab.nn",
                                                      "vaelab.distributions", "vaelab.losses"))}
    for m in below_study:
        assert not {t for t in graph[m] if t.startswith(("vaelab.study", "vaelab.report", "vaelab.commands"))}, m
        if m.startswith("vaelab.models"):  # a model takes its class attributes from its config, not from zsl/
            assert not {t for t in graph[m] if t.startswith("vaelab.zsl")}, m
    for m in graph:
        if m.startswith("vaelab.study"):
            assert not {t for t in graph[m] if t.startswith(("vaelab.report", "vaelab.commands"))}, m
        if m.startswith("vaelab.metrics"):  # pure functions of arrays
            assert not {t for t in graph[m] if not t.startswith(("vaelab.metrics", "vaelab.errors"))}, (m, graph[m])


# ----- the report renders saved artefacts only ------------------------------------------------------------
#: What no module of vaelab/report/ may import, anywhere in it (inside functions too): torch, and the vaelab
#: modules that build, load or run a model or read the data it runs on. The figures that need a model are
#: made when a run is evaluated (vaelab.run_figures); the report copies them (vaelab.report.saved).
REPORT_MAY_NOT_IMPORT = ("torch", "vaelab.rundir", "vaelab.run_figures", "vaelab.model_figures", "vaelab.classifier_training",
                         "vaelab.models", "vaelab.nn", "vaelab.training",
                         "vaelab.registry", "vaelab.scoring", "vaelab.reference_classifier", "vaelab.data", "vaelab.images",
                         "vaelab.distributions", "vaelab.losses", "vaelab.parallel", "vaelab.study.execute", "vaelab.zsl.run")


def imported_names(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module name an import statement of ``source`` (the module ``module``) names: ``import a.b`` →
    a.b; ``from ..x import y`` → the absolute x and x.y (y may be a module)."""
    pkg = module if is_package else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            out |= {base} | {f"{base}.{a.name}" for a in node.names}
    return out


def forbidden(names: set[str]) -> set[str]:
    return {n for n in names if any(n == f or n.startswith(f + ".") for f in REPORT_MAY_NOT_IMPORT)}


def test_the_report_checker_sees_model_imports():
    assert forbidden(imported_names("def f():\n    import torch\n", "vaelab.report.x")) == {"torch"}
    assert forbidden(imported_names("from ..rundir import load\n", "vaelab.report.x")) == {"vaelab.rundir", "vaelab.rundir.load"}
    assert forbidden(imported_names("from .. import run_figures\n", "vaelab.report", is_package=True)) == {"vaelab.run_figures"}
    assert forbidden(imported_names("from ..io import read_json\nfrom ..study.results import ordered\n", "vaelab.report.x")) == set()


def test_the_report_imports_no_model_code():
    """The report renders saved artefacts only: no module of vaelab/report/ imports torch or model code."""
    files = sorted((SRC / "vaelab" / "report").glob("*.py"))
    assert len(files) >= 5
    bad = {}
    for path in files:
        names = imported_names(path.read_text(), _module_name(path), path.name == "__init__.py")
        if forbidden(names):
            bad[path.name] = sorted(forbidden(names))
    assert bad == {}
