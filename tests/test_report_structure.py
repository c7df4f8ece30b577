"""The report's honesty, checked on its structure: every likelihood column names the images it was
computed on, conditional bounds are flagged, an absent metric gets no bar, each loss curve's axis says
what that variant's loss is, and the paper's P100 seconds are not shown as a value beside ours."""
import re

import numpy as np
import pytest

from vaelab.report import figures
from vaelab.report.html import render
from vaelab.study.results import COND_MARK, markdown

ENV = {"machine": {"summary": "Test CPU, 2 core(s)", "cpu": "Test CPU", "cores": 2, "usable_cores": 2, "torch_threads": 2,
                   "platform": "linux", "hostname": "h", "memory_gib": 1.0}, "versions": {"vaelab": "0"}, "git_commit": None}


def _m(x):
    return {"mean": x, "sd": None, "n": 1, "values": [x]}


def _absent(why):
    return {"available": False, "reason": why}


def _variant(label, conditional, metrics, loss_labels):
    return {"label": label, "n_runs": 1, "n_ok": 1, "n_failed": 0, "errors": [], "metrics": metrics, "paper": None,
            "model": {}, "model_overrides": {}, "phases": [[p, 1] for p in loss_labels],
            "train": {"optimizer": "adam", "lr": 1e-3, "batch_size": 100, "epochs": 1, "binarize": "none", "precision": "fp32"},
            "latent_kind": "gaussian", "conditional": conditional, "loss_labels": loss_labels}


@pytest.fixture()
def results():
    lik = {"neg_elbo": _m(101.0), "neg_elbo_iwae_subset": _m(100.5), "iwae_nll": _m(99.0)}
    cost = {"seconds_per_epoch": _m(2.0), "images_per_epoch": _m(4000.0), "images_per_s": _m(2000.0), "load_avg_max": _m(1.5)}
    V = {
        "vae": _variant("VAE", False, {"recon_accuracy": _m(0.9), "fid": _m(10.0), **lik, **cost},
                        {"train": "−ELBO (nats/image)"}),
        "cvae": _variant("CVAE", True, {"recon_accuracy": _m(0.95), "fid": _m(8.0), **lik, **cost},
                         {"train": "−ELBO of log p(x | y) (nats/image)"}),
        "cvae-quadrant": _variant("CVAE (quadrants)", False,
                                  {"recon_accuracy": _m(0.5), "fid": _absent("no sampling"), "iwae_nll": _absent("no bound"), **cost},
                                  {"baseline": "baseline NN (nats)", "train": "−ELBO of log p(missing | given) (nats/image)"}),
    }
    V["vae"]["paper"] = {"recon_accuracy": 78.6, "seconds_per_epoch": 2}
    meta = {"n_test": 1000, "iwae_n": 200, "iwae_k": 100}
    return {"schema": 1, "settings": {"variants": list(V), "dataset": "mnist-5k", "backbone": "small", "latent_dim": 16,
                                      "epochs": 1, "seeds": [0], "protocol": "paper", "binarize": "none", "phase_epochs": None,
                                      "n_samples": 100, "iwae_k": 100, "iwae_n": 200, "map_points": 100},
            "command": "vaelab compare --quick", "command_equivalent": "vaelab compare ...", "started": "t0", "finished": "t1",
            "seconds": 1.0, "environment": ENV, "classifier_test_accuracy": 0.99,
            "compute": {"runs": 3, "train_seconds": 1.0, "eval_seconds": 1.0, "eval_seconds_missing": 0, "total_seconds": 2.0},
            "variants": V, "runs": [{"variant": n, "seed": 0, "status": "ok", "run_dir": f"runs/{n}-s0", "eval": {"meta": meta}}
                                    for n in V]}


def _headers(html, table_id):
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S).group(1)
    return re.findall(r'<th[^>]*>(.*?)</th>', table)


def test_likelihood_columns_name_their_images_and_conditional_bounds_are_flagged(results):
    html = render(results, {}, None, n_recon=10, map_points=100)
    heads = _headers(html, "metrics-results")
    assert "−ELBO, all 1000 test images (nats)" in heads
    assert "−ELBO, first 200 test images (nats)" in heads and "IWAE NLL, K=100, first 200 test images (nats)" in heads
    rows = {m.group(1): m.group(2) for m in re.finditer(r'<tr data-variant="([^"]+)">(.*?)</tr>', html, re.S)
            if "metrics" not in m.group(1)}
    cvae_lik = re.findall(r'data-key="(neg_elbo|neg_elbo_iwae_subset|iwae_nll)"[^>]*>([^<]*)(<sup class="cond")?', rows["cvae"])
    assert len(cvae_lik) == 3 and all(flag for _, _, flag in cvae_lik)
    vae_lik = re.findall(r'data-key="(neg_elbo|neg_elbo_iwae_subset|iwae_nll)"[^>]*>([^<]*)(<sup class="cond")?', rows["vae"])
    assert len(vae_lik) == 3 and not any(flag for _, _, flag in vae_lik)
    assert 'id="cond-note"' in html
    md = markdown(results)
    assert "IWAE NLL, K=100, first 200 test images (nats)" in md
    assert any(line.startswith("| CVAE |") and COND_MARK in line for line in md.splitlines())


def test_paper_seconds_are_a_labelled_note_not_a_column_beside_ours(results):
    html = render(results, {}, None, n_recon=10, map_points=100)
    assert not any("P100" in h for h in _headers(html, "table2-results"))
    assert not any("P100" in h for h in _headers(html, "cost-results"))
    note = re.search(r'<p class="muted" id="paper-seconds">(.*?)</p>', html).group(1)
    assert "Tesla P100" in note and "not comparable" in note
    assert "images/epoch" in _headers(html, "cost-results") and "max load avg" in _headers(html, "cost-results")
    md = markdown(results)
    assert "| Variant | n | Recon acc. % | Paper % (Table 2) |" in md and "|:---|" in md  # text column left-aligned


def test_absent_metric_gets_no_bar(results, monkeypatch):
    drawn = []
    from matplotlib.axes import Axes

    real_bar = Axes.bar

    def bar(self, x, height, *a, **k):
        drawn.append((self, list(np.asarray(x)), list(np.asarray(height))))
        return real_bar(self, x, height, *a, **k)

    monkeypatch.setattr(Axes, "bar", bar)
    png = figures.metric_bars(results["variants"], results["settings"]["variants"])
    assert png[:4] == b"\x89PNG"
    drawn = [(ax.get_title(), x, h) for ax, x, h in drawn]  # titles are set after the bars
    fid = next(d for d in drawn if d[0].startswith("FID"))
    assert fid[1] == [0, 1] and all(np.isfinite(fid[2]))  # vae and cvae; no bar at cvae-quadrant's x = 2
    assert not any(d[0].startswith("Inception") for d in drawn)  # no variant has it: no bar at all


def test_loss_axis_says_what_each_variant_loss_is(results):
    assert figures.axis_label({"train": "−ELBO (nats/image)"}) == "−ELBO (nats/image)"
    two = figures.axis_label(results["variants"]["cvae-quadrant"]["loss_labels"])
    assert two.splitlines() == ["baseline: baseline NN (nats)", "train: −ELBO of log p(missing | given) (nats/image)"]
    html = render(results, {}, None, n_recon=10, map_points=100)
    units = dict(re.findall(r'<div class="card" data-variant="([^"]+)">.*?<div class="muted loss-unit">([^<]*)</div>', html, re.S))
    assert units["vae"] == "train: −ELBO (nats/image)"
    assert units["cvae"] == "train: −ELBO of log p(x | y) (nats/image)"
    from vaelab.registry import get
    assert "not nats" in get("vae-gan").loss_label("train") and "not nats" in get("wae").loss_label("train")
    assert get("vq-vae").loss_label("prior").startswith("PixelCNN")


def test_paired_iwae_differences_are_a_table_only_when_results_have_them(results):
    assert 'id="paired-iwae"' not in render(results, {}, None, n_recon=10, map_points=100)
    assert "Paired IWAE" not in markdown(results)
    results["paired_iwae"] = [
        {"a": "vae", "b": "cvae", "reason": "cvae is conditional: its bound is on −log p(x | y), not −log p(x)"},
        {"a": "vae", "b": "cvae-quadrant", "n_images": 200, "seeds": [0, 1], "mean_diff": -1.234, "ci_low": -1.9, "ci_high": -0.568},
    ]
    html = render(results, {}, None, n_recon=10, map_points=100)
    assert [re.sub(r"<[^>]+>", "", h) for h in _headers(html, "paired-iwae")] == ["Variant", "Images", "Seeds", "Mean difference (nats)", "95% CI"]
    table = re.search(r'<table id="paired-iwae">(.*?)</table>', html, re.S).group(1)
    rows = [re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", table) if "<td>" in r]
    assert rows == [["CVAE", "—", "—", "—", "left out: cvae is conditional: its bound is on −log p(x | y), not −log p(x)"],
                    ["CVAE (quadrants)", "200", "0,1", "-1.23", "[-1.90, -0.57]"]]
    assert "Against VAE (the study&#x27;s first variant)" in html
    md = markdown(results)
    assert "| CVAE (quadrants) | 200 | 0,1 | -1.23 | [-1.90, -0.57] |" in md and "Against VAE (the study's first variant)" in md
