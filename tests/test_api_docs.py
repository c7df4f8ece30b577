"""The typed, documented public API: a py.typed marker, docstrings and annotations on the public
functions, and the API reference pages build from them."""
import importlib.util
import inspect
from pathlib import Path

import vaelab

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_is_marked_typed():
    assert (Path(vaelab.__file__).parent / "py.typed").is_file()
    assert 'vaelab = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()


def test_public_functions_have_docstrings_and_annotations():
    for name in ("build", "variants", "train", "load", "evaluate_run", "load_dataset", "run_config"):
        fn = getattr(vaelab, name)
        assert inspect.getdoc(fn), name
        sig = inspect.signature(fn)
        assert sig.return_annotation is not inspect.Signature.empty, name
        assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values()
                   if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)), name


def test_the_api_reference_builds(tmp_path):
    spec = importlib.util.spec_from_file_location("build_api_docs", ROOT / "tools" / "build_api_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pages = mod.build(tmp_path)
    text = {p.name: p.read_text() for p in pages}
    assert "vaelab.rundir.html" in text["index.html"]
    for fn in ("train", "load", "evaluate_run"):
        assert f"<strong>{fn}</strong>" in text["vaelab.rundir.html"], fn
    assert "zsl_scores" in text["vaelab.metrics.zsl.html"]
    assert not any("file:" in t for t in text.values())
