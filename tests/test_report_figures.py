"""The report renders saved artefacts only: the figures that need a model are made when each run is
evaluated (RUN/figures/ with its index.json) and the report copies them; it writes its page with model
loading and drawing from models made impossible. A run evaluated before figures were saved renders too,
with a line in place of each figure saying that `vaelab evaluate RUN --figures-only` makes them.

A tiny study: mnist-5k, small backbone, 1 epoch, tiny evaluation sizes, the session's quick mnist-5k
reference classifier (tests/conftest.py)."""
import re
import shutil

import pytest

import vaelab.rundir as R
import vaelab.model_figures as MF
import vaelab.run_figures as F
from vaelab.cli import main
from vaelab.report import write_report

ARGS = ["compare", "--variants", "vae", "--epochs", "1", "--dataset", "mnist-5k", "--backbone", "small", "--latent-dim", "4",
        "--n-samples", "20", "--iwae-k", "2", "--iwae-n", "10", "--map-points", "60", "--no-progress"]
KINDS = ("samples", "recon", "traversal", "map")


@pytest.fixture(scope="module")
def study(tmp_path_factory, mnist5k_quick_classifier):
    out = tmp_path_factory.mktemp("figs") / "study"
    assert main([*ARGS, "--out", str(out)]) == 0
    return out


def _no_models(monkeypatch):
    """Loading a run or drawing from a model raises from here on."""
    def boom(*a, **k):
        raise AssertionError("the report loaded or ran a model")

    for name in ("load", "make_figures", "evaluate_run"):
        monkeypatch.setattr(R, name, boom)
    for name in ("write_figures", "sample_grid", "recon_grid", "active_dims", "traversal", "latent_map", "embed",
                 "sequence_pictures"):
        for mod in (F, MF):  # run_figures re-exports model_figures' drawings
            if hasattr(mod, name):
                monkeypatch.setattr(mod, name, boom)


def _imgs(html: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', html)


def test_the_evaluation_saves_the_figures_and_the_report_copies_them(study, monkeypatch):
    run = study / "runs" / "vae-s0"
    index = (run / "figures" / "index.json").read_text()
    assert all(f'"file": "{k}.png"' in index for k in KINDS) and '"points": 60' in index  # --map-points reached evaluate
    for k in KINDS:  # the study's report shows the bytes the evaluation saved
        assert (study / "report" / "img" / f"vae-{k}.png").read_bytes() == (run / "figures" / f"{k}.png").read_bytes()
    # written again with no model to be had: the same page
    _no_models(monkeypatch)
    shutil.rmtree(study / "report")
    html = write_report(study).read_text()
    assert [f"img/vae-{k}.png" for k in KINDS] == [s for s in _imgs(html) if not s.endswith(("loss.png", "metrics.png"))]
    assert all((study / "report" / s).is_file() for s in _imgs(html))
    assert "no saved figures" not in html


def test_a_run_evaluated_before_figures_were_saved_renders_and_says_how_to_make_them(study, tmp_path, monkeypatch, capsys):
    old = tmp_path / "old"
    shutil.copytree(study, old, ignore=shutil.ignore_patterns("figures", "report"))  # as an evaluation before this change left it
    run = old / "runs" / "vae-s0"
    stamp = (run / "eval.json").stat().st_mtime_ns
    with monkeypatch.context() as m:
        _no_models(m)
        html = write_report(old).read_text()
    assert all(s.endswith(("loss.png", "metrics.png")) for s in _imgs(html))  # loss curves and bars: from saved records
    boxes = re.findall(r'<div class="na-box"[^>]*>— ([^<]*)</div>', html)
    assert len(boxes) == len(KINDS)
    assert all(b.startswith(f"no saved figures: {run} was evaluated before") and
               f"`vaelab evaluate {run} --figures-only` makes them" in b for b in boxes)
    # the same command again: nothing retrained or re-evaluated, the page still renders
    assert main([*ARGS, "--out", str(old)]) == 0
    assert "finished before; skipped" in capsys.readouterr().err
    assert "no saved figures" in (old / "report" / "index.html").read_text()
    # the command the page names makes them, eval.json untouched; the report then shows them
    assert main(["evaluate", str(run), "--figures-only", "--map-points", "60", "--quiet"]) == 0
    assert (run / "eval.json").stat().st_mtime_ns == stamp
    html = write_report(old).read_text()
    assert "no saved figures" not in html and f"img/vae-{KINDS[0]}.png" in _imgs(html)
    for k in KINDS:  # drawn by the figures-only path as the evaluation drew them
        assert (run / "figures" / f"{k}.png").read_bytes() == (study / "runs" / "vae-s0" / "figures" / f"{k}.png").read_bytes()
