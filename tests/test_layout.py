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
                "vaelab.training", "vaelab.rundir")


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


# ----- module size ---------------------------------------------------------------------------------------
MAX_LINES = 350
#: Modules over MAX_LINES, each with why it may be (none now: training/trainer.py, the last, was split). An entry
#: leaves when its file is split.
TOO_LONG_ALLOWED: dict[str, str] = {}


def long_modules(files: dict[str, str], limit: int = MAX_LINES) -> set[str]:
    """The names of ``files`` ({name: source}) with more than ``limit`` lines."""
    return {name for name, text in files.items() if len(text.splitlines()) > limit}


def test_the_size_checker_finds_a_long_module():
    assert long_modules({"a.py": "x = 1\n" * 351, "b.py": "x = 1\n" * 350, "c.py": ""}) == {"a.py"}


def test_no_module_is_over_350_lines():
    files = {p.relative_to(SRC).as_posix(): p.read_text() for p in SRC.rglob("*.py")}
    assert len(files) > 50
    too_long = long_modules(files)
    assert too_long - set(TOO_LONG_ALLOWED) == set(), "split these modules into cohesive ones of at most 350 lines"
    assert set(TOO_LONG_ALLOWED) - too_long == set(), "no longer over 350 lines: remove them from TOO_LONG_ALLOWED"


# ----- imports inside functions ----------------------------------------------------------------------------
_TORCH = "loads torch (+1.2 s); this module loads at `vaelab --help` (0.15 s without torch)"
_NUMPY = "loads numpy (+0.14 s); this module loads at `vaelab --help` (0.15 s without it)"
_OWNED = "in a file of the concurrent data-parallel work (training/, models/): left to it"
#: The imports of a vaelab module inside a function that may stay there: (importing module, imported module) →
#: why. Any other belongs at module level (tests/test_readme_design.py and test_no_import_cycle_in_src check
#: the layering of all of them).
LOCAL_IMPORTS_ALLOWED = {
    ("vaelab", "vaelab.rundir"): "the lazy public API: `import vaelab` (and the CLI, which imports it) stays free of torch",
    ("vaelab", "vaelab.training.config"): "the lazy public API: `import vaelab` stays free of torch",
    ("vaelab", "vaelab.data"): "the lazy public API: `import vaelab` stays free of torch",
    ("vaelab.registry", "vaelab.models"): "the variant modules import register from the registry (a cycle); and torch",
    ("vaelab.config", "vaelab.nn.backbones"): _TORCH,
    ("vaelab.configfile", "vaelab.training.config"): _TORCH,
    ("vaelab.scoring", "vaelab.metrics.disentanglement"): "loads scikit-learn's trees (+0.8 s on every `vaelab train`, "
                                                          "which imports scoring through rundir); only runs with factors need it",
    ("vaelab.commands.classifier", "vaelab.data"): _TORCH,
    ("vaelab.commands.classifier", "vaelab.reference_classifier"): _TORCH,
    ("vaelab.commands.compare", "vaelab.data"): _TORCH,
    ("vaelab.commands.compare", "vaelab.report"): _TORCH,
    ("vaelab.commands.compare", "vaelab.tensorboard_log"): _NUMPY,
    ("vaelab.commands.compare", "vaelab.training.config"): _TORCH,
    ("vaelab.commands.evaluate", "vaelab.rundir"): _TORCH,
    ("vaelab.commands.sample", "vaelab.data"): _TORCH,
    ("vaelab.commands.sample", "vaelab.images"): _TORCH,
    ("vaelab.commands.sample", "vaelab.models.base"): _TORCH,
    ("vaelab.commands.sample", "vaelab.run_figures"): _TORCH,
    ("vaelab.commands.sample", "vaelab.rundir"): _TORCH,
    ("vaelab.commands.sequences", "vaelab.data"): _TORCH,
    ("vaelab.commands.sequences", "vaelab.nn.backbones"): _TORCH,
    ("vaelab.commands.sequences", "vaelab.report"): _TORCH,
    ("vaelab.commands.train", "vaelab.parallel"): _TORCH,
    ("vaelab.commands.train", "vaelab.rundir"): _TORCH,
    ("vaelab.commands.train", "vaelab.training.config"): _TORCH,
    ("vaelab.commands.zsl", "vaelab.report"): _TORCH,
    ("vaelab.commands.zsl", "vaelab.zsl.benchmark"): _NUMPY,
    ("vaelab.commands.zsl", "vaelab.zsl.features"): _TORCH,
    ("vaelab.commands.zsl", "vaelab.zsl.run"): _TORCH,
    ("vaelab.commands.zsl", "vaelab.zsl.study"): _TORCH,
    ("vaelab.study.execute", "vaelab.data"): _TORCH,
    ("vaelab.study.execute", "vaelab.data.user"): _TORCH,
    ("vaelab.study.execute", "vaelab.reference_classifier"): _TORCH,
    ("vaelab.study.execute", "vaelab.rundir"): _TORCH,
    ("vaelab.study.plan", "vaelab.data"): _TORCH,
    ("vaelab.study.plan", "vaelab.rundir"): _TORCH,
    ("vaelab.study.plan", "vaelab.training.config"): _TORCH,
    ("vaelab.study.sequences", "vaelab.data"): _TORCH,
    ("vaelab.study.sequences", "vaelab.reference_classifier"): _TORCH,
    ("vaelab.study.sequences", "vaelab.rundir"): _TORCH,
    ("vaelab.study.sequences", "vaelab.training.config"): _TORCH,
    ("vaelab.training.trainer", "vaelab._cpu"): _OWNED,
    ("vaelab.training.record", "vaelab.metrics.clustering"): _OWNED,
    ("vaelab.models.vade", "vaelab.metrics.clustering"): _OWNED,
}


def function_local_imports(source: str, module: str, modules: set[str], is_package: bool = False) -> set[tuple[str, str]]:
    """(``module``, imported vaelab module) for every import statement inside a function of ``source``;
    ``from x import y`` counts as x.y where that is one of ``modules``, else as x."""
    pkg = module if is_package else module.rpartition(".")[0]
    out = set()
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import):
                out |= {(module, a.name) for a in node.names if a.name.split(".")[0] == "vaelab"}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                if base.split(".")[0] == "vaelab":
                    out |= {(module, f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base) for a in node.names}
    return out


def test_the_local_import_checker_finds_imports_in_functions():
    src = ("from .io import read_json\nimport numpy\n\n\ndef f():\n    import torch\n    from ..rundir import load\n"
           "    from .. import rng\n\n\nclass C:\n    def g(self):\n        if True:\n            import vaelab.data\n")
    mods = {"vaelab.io", "vaelab.rundir", "vaelab.rng", "vaelab.data", "vaelab.study.x"}
    assert function_local_imports(src, "vaelab.study.x", mods) == {
        ("vaelab.study.x", "vaelab.rundir"), ("vaelab.study.x", "vaelab.rng"), ("vaelab.study.x", "vaelab.data")}
    assert function_local_imports("from . import rng\n", "vaelab.x", {"vaelab.rng"}) == set()


def test_no_vaelab_module_is_imported_inside_a_function_without_a_reason():
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    found = set()
    for mod, path in files.items():
        found |= function_local_imports(path.read_text(), mod, set(files), path.name == "__init__.py")
    assert found - set(LOCAL_IMPORTS_ALLOWED) == set(), "move these imports to module level (or allow one, with the reason)"
    assert set(LOCAL_IMPORTS_ALLOWED) - found == set(), "no longer imported inside a function: remove from the allowlist"
