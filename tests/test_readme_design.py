"""The README stays true to the code: its "Design" section names exactly the packages and modules of
src/vaelab, and the layer rule it states holds for every import; the `vaelab` command lines in the
README and the user guide parse with the real argument parser."""
import re
import shlex
from pathlib import Path

import pytest

from test_layout import import_graph

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "vaelab"


def design_block() -> str:
    """The first fenced block of the README's "## Design" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Design\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def design_entries() -> dict[str, int]:
    """{name as written (``models/``, ``rundir.py``, ``zsl/benchmark.py``): its layer}."""
    entries, layer = {}, None
    for line in design_block().splitlines():
        if m := re.match(r"layer (\d+)\b", line):
            layer = int(m.group(1))
        elif m := re.match(r"\s+(\S+(?:/|\.py))(?:\s|$)", line):
            assert layer is not None, f"{m.group(1)} is named before any layer"
            assert m.group(1) not in entries, f"{m.group(1)} is named twice"
            entries[m.group(1)] = layer
    return entries


def module_of(name: str) -> str:
    """``models/`` → ``vaelab.models``; ``zsl/benchmark.py`` → ``vaelab.zsl.benchmark``; ``__init__.py`` → ``vaelab``."""
    parts = name.rstrip("/").removesuffix(".py").split("/")
    return ".".join(["vaelab"] + [p for p in parts if p != "__init__"])


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    """The layer of the most specific README entry that contains ``module``."""
    hits = [(len(m), lay) for m, lay in layers.items() if module == m or (m != "vaelab" and module.startswith(m + "."))]
    return max(hits)[1] if hits else None


def test_design_section_names_existing_packages_and_modules():
    entries = design_entries()
    assert len(entries) > 20
    for name in entries:
        path = PKG / name
        assert (path / "__init__.py").is_file() if name.endswith("/") else path.is_file(), \
            f"README's design section names {name}, which is not under src/vaelab"


def test_design_section_names_every_top_level_package_and_module():
    entries = design_entries()
    packages = {p.name + "/" for p in PKG.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.name for p in PKG.glob("*.py")}
    assert packages - set(entries) == set(), "packages missing from the README's design section"
    assert modules - set(entries) == set(), "modules missing from the README's design section"


def test_every_import_keeps_to_the_readme_layers():
    layers = {module_of(n): lay for n, lay in design_entries().items()}
    graph = import_graph()
    assert not [m for m in graph if layer_of(m, layers) is None]
    upward = [(m, t) for m, targets in graph.items() for t in targets if layer_of(t, layers) > layer_of(m, layers)]
    assert upward == [], "imports from a later layer than the README's design section allows"


def test_the_layer_checker_sees_an_upward_import():
    layers = {"vaelab.models": 2, "vaelab.study": 4, "vaelab.zsl": 4, "vaelab.zsl.benchmark": 1}
    assert layer_of("vaelab.zsl.benchmark", layers) == 1 and layer_of("vaelab.zsl.run", layers) == 4
    assert layer_of("vaelab.study.plan", layers) > layer_of("vaelab.models.vae", layers)


def command_lines() -> list[tuple[str, str]]:
    """Every ``vaelab ...`` command (or ``... -m vaelab ...``) in the bash blocks of the README and the
    user guide, comments removed."""
    out = []
    for doc in ("README.md", "docs/guide.md"):
        for block in re.findall(r"```bash\n(.*?)```", (ROOT / doc).read_text(), re.S):
            for line in block.splitlines():
                words = shlex.split(line, comments=True)
                if "vaelab" in words and (words[0] == "vaelab" or words[words.index("vaelab") - 1] == "-m"):
                    out.append((doc, shlex.join(words[words.index("vaelab") + 1:])))
    return out


def test_readme_has_command_lines():
    assert len(command_lines()) > 20


@pytest.mark.parametrize("doc, args", command_lines())
def test_documented_command_lines_parse(doc, args):
    from vaelab.cli import build_parser

    try:
        build_parser().parse_args(shlex.split(args))
    except SystemExit as e:  # argparse: an unknown option or a missing argument
        pytest.fail(f"{doc}: `vaelab {args}` does not parse (exit {e.code})")
