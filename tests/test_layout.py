"""The package's layering: no import cycle anywhere in src/ (module-level or deferred imports inside
functions alike); a pure model layer (models and what they are made of) that imports nothing of the
data, the processes, the trainer, the study, the report or the commands; and the report and the study
stay on their sides of it."""
import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """{module: the vaelab modules it imports}, from every import statement of the tree ``src``
    (including those inside functions; ``TYPE_CHECKING`` blocks are left out: they never run)."""
    files = {_module_name(p, src): p for p in src.rglob("*.py")}
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


#: The model layer: the variants and what they are made of and compute with (networks, distributions,
#: losses, metrics, the structured-output tasks' masks, the batch share, seeded draws, configs, the
#: optimizer step, the registry). It imports nothing outside itself, anywhere in it (inside functions
#: too): the share reaches a model's noise draws as an object handed in (vaelab.share), never through
#: vaelab.parallel, and augmentation is the trainer's (a phase declares it).
MODEL_LAYER = ("vaelab.models", "vaelab.nn", "vaelab.distributions", "vaelab.losses", "vaelab.metrics", "vaelab.tasks",
               "vaelab.share", "vaelab.rng", "vaelab.errors", "vaelab.config", "vaelab.optim", "vaelab.registry")
#: The packages above it (the issue's list, and the trainer): never part of the model layer.
ABOVE_MODELS = ("vaelab.data", "vaelab.zsl", "vaelab.parallel", "vaelab.study", "vaelab.report", "vaelab.commands",
                "vaelab.training")


def within(module: str, packages) -> bool:
    """``module`` is one of ``packages`` or inside one of them (``vaelab.models.vae`` is in ``vaelab.models``;
    ``vaelab.models_old`` is not)."""
    return any(module == p or module.startswith(p + ".") for p in packages)


def layer_violations(graph: dict[str, set[str]], layer=MODEL_LAYER) -> dict[str, set[str]]:
    """{module of ``layer``: the modules outside ``layer`` it imports}, for those that import any."""
    out = {}
    for m in sorted(graph):
        bad = {t for t in graph[m] if not within(t, layer)} if within(m, layer) else set()
        if bad:
            out[m] = bad
    return out


def test_the_layer_checker_finds_a_violation(tmp_path):
    graph = {"vaelab.models.x": {"vaelab.nn.y", "vaelab.data.augment"}, "vaelab.nn.y": {"vaelab.parallel", "vaelab.rng"},
             "vaelab.data.augment": {"vaelab.errors"}, "vaelab.training.trainer": {"vaelab.data", "vaelab.models.x"},
             "vaelab.models_old": {"vaelab.study"}, "vaelab.losses.z": {"vaelab"}}
    assert layer_violations(graph) == {"vaelab.models.x": {"vaelab.data.augment"}, "vaelab.nn.y": {"vaelab.parallel"},
                                       "vaelab.losses.z": {"vaelab"}}
    assert layer_violations({"vaelab.models.x": {"vaelab.nn.y", "vaelab.share", "vaelab.registry"}}) == {}
    # from source, as the real check reads it: a relative import deferred into a function is seen
    for rel, text in {"vaelab/__init__.py": "", "vaelab/share.py": "", "vaelab/data/__init__.py": "",
                      "vaelab/data/augment.py": "def random_affine(x):\n    return x\n", "vaelab/models/__init__.py": "",
                      "vaelab/models/good.py": "from ..share import WHOLE\n",
                      "vaelab/models/bad.py": "from .. import share\n\ndef loss(x):\n    from ..data.augment import random_affine\n"
                                              "    return random_affine(x)\n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert layer_violations(import_graph(tmp_path)) == {"vaelab.models.bad": {"vaelab.data.augment"}}


def test_the_model_layer_imports_nothing_above_it():
    """Models, networks, distributions, losses and metrics (and their support modules) import nothing
    of the data, zsl, the processes, the trainer, the study, the report or the commands."""
    graph = import_graph()
    assert not [p for p in ABOVE_MODELS if within(p, MODEL_LAYER)]
    assert {"vaelab.models.vade", "vaelab.nn.quantizer", "vaelab.distributions.gaussian", "vaelab.models.vae_gan",
            "vaelab.share"} <= {m for m in graph if within(m, MODEL_LAYER)}
    assert layer_violations(graph) == {}


def test_every_package_is_placed():
    """Every package of vaelab is in the model layer or above it, so a new one is placed on purpose."""
    packages = {f"vaelab.{p.parent.name}" for p in (SRC / "vaelab").glob("*/__init__.py")}
    assert packages and not {p for p in packages if not within(p, MODEL_LAYER + ABOVE_MODELS)}


def test_layers():
    graph = import_graph()
    below_study = {m for m in graph if m.startswith(("vaelab.metrics", "vaelab.models", "vaelab.training", "vaelab.nn",
                                                      "vaelab.distributions", "vaelab.losses"))}
    for m in below_study:
        assert not {t for t in graph[m] if t.startswith(("vaelab.study", "vaelab.report", "vaelab.commands"))}, m
    for m in graph:
        if m.startswith("vaelab.study"):
            assert not {t for t in graph[m] if t.startswith(("vaelab.report", "vaelab.commands"))}, m
        if m.startswith("vaelab.metrics"):  # pure functions of arrays
            assert not {t for t in graph[m] if not t.startswith(("vaelab.metrics", "vaelab.errors"))}, (m, graph[m])


# ----- the report renders saved artefacts only ------------------------------------------------------------
#: What no module of vaelab/report/ may import, anywhere in it (inside functions too): torch, and the vaelab
#: modules that build, load or run a model or read the data it runs on. The figures that need a model are
#: made when a run is evaluated (vaelab.run_figures); the report copies them (vaelab.report.saved).
REPORT_MAY_NOT_IMPORT = ("torch", "vaelab.rundir", "vaelab.run_figures", "vaelab.models", "vaelab.nn", "vaelab.training",
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
