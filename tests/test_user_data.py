"""The user's own datasets (folder:DIR, npz:FILE), RGB end to end, and the discretised logistic likelihood."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vaelab
from vaelab.data import load_dataset, user
from vaelab.errors import ConfigError, DataError
from vaelab.models.base import NotAvailable
from vaelab.losses.likelihood import discretized_logistic_log_prob, make_likelihood
from vaelab.registry import get, variants

from battery import tiny_config
from helpers import cli


def _shape_image(rng: np.random.Generator, cls: int, size: int = 32) -> np.ndarray:
    """A coloured disc (class 0) or square (class 1) on a dark coloured background."""
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = rng.integers(0, 60, 3)
    cx, cy = rng.integers(size // 4, 3 * size // 4, 2)
    r = int(rng.integers(size // 8, size // 4))
    yy, xx = np.mgrid[:size, :size]
    mask = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r) if cls == 0 else ((abs(xx - cx) <= r) & (abs(yy - cy) <= r))
    img[mask] = rng.integers(120, 256, 3)
    return img


def make_rgb_folder(root: Path, n_per_class: int = 100, size: int = 32) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(("discs", "squares")):
        (root / name).mkdir(parents=True)
        for i in range(n_per_class):
            Image.fromarray(_shape_image(rng, c, size)).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory) -> Path:
    return make_rgb_folder(tmp_path_factory.mktemp("rgb") / "shapes")


# ----- loading ----------------------------------------------------------------------------------
def test_folder_with_class_folders_splits_per_class(rgb_folder):
    tr = load_dataset(f"folder:{rgb_folder}", "train")
    te = load_dataset(f"folder:{rgb_folder}", "test")
    assert tr.images.dtype == np.uint8 and tr.shape == (3, 32, 32) and te.shape == (3, 32, 32)
    assert (len(tr), len(te)) == (180, 20)
    assert np.bincount(te.labels).tolist() == [10, 10] and tr.n_classes == te.n_classes == 2
    assert tr.class_names == ("discs", "squares") and tr.labelled
    # the pixels are the files' pixels: the first test disc is one of the disc files, byte for byte
    files = sorted((rgb_folder / "discs").iterdir())
    pixels = {np.asarray(Image.open(f)).transpose(2, 0, 1).tobytes() for f in files}
    assert te.images[te.labels == 0][0].tobytes() in pixels
    # no image in both splits, and the split is the same every time
    assert not ({x.tobytes() for x in tr.images} & {x.tobytes() for x in te.images})
    assert np.array_equal(load_dataset(f"folder:{rgb_folder}", "test").images, te.images)


def test_folder_with_train_and_test_subfolders(tmp_path):
    make_rgb_folder(tmp_path / "d" / "train", 6)
    make_rgb_folder(tmp_path / "d" / "test", 3)
    assert len(load_dataset(f"folder:{tmp_path / 'd'}", "train")) == 12
    assert len(load_dataset(f"folder:{tmp_path / 'd'}", "test")) == 6


def test_flat_greyscale_folder_is_unlabelled_and_resizes(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(20):
        size = 24 if i % 2 else 40
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    with pytest.raises(DataError, match=r"1\.png: is 24×24 but 0\.png is 40×40; give --image-size"):
        load_dataset(f"folder:{tmp_path}", "train")
    tr = load_dataset(f"folder:{tmp_path}", "train", image_size=28)
    assert tr.shape == (1, 28, 28) and not tr.labelled and (tr.labels == -1).all() and len(tr) == 18


def test_npz_grey_uint8_rgb_float_test_arrays_and_test_file(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    y = np.arange(50) % 5
    np.savez(tmp_path / "grey.npz", x=x, y=y)
    tr, te = (load_dataset(f"npz:{tmp_path / 'grey.npz'}", s) for s in ("train", "test"))
    assert tr.shape == (1, 28, 28) and (len(tr), len(te)) == (45, 5) and tr.n_classes == 5
    assert np.array_equal(np.sort(np.concatenate([tr.images, te.images]).reshape(50, -1), 0), np.sort(x.reshape(50, -1), 0))
    xf = rng.random((30, 16, 16, 3))
    np.savez(tmp_path / "rgb.npz", x=xf, x_test=xf[:4])
    tr = load_dataset(f"npz:{tmp_path / 'rgb.npz'}", "train")
    te = load_dataset(f"npz:{tmp_path / 'rgb.npz'}", "test")
    assert tr.shape == (3, 16, 16) and len(tr) == 30 and len(te) == 4 and not tr.labelled
    assert np.array_equal(tr.images[0].transpose(1, 2, 0), np.round(xf[0] * 255).astype(np.uint8))
    np.savez(tmp_path / "t.npz", x=x[:7], y=y[:7])
    te = load_dataset(f"npz:{tmp_path / 'grey.npz'},{tmp_path / 't.npz'}", "test")
    assert len(te) == 7 and len(load_dataset(f"npz:{tmp_path / 'grey.npz'},{tmp_path / 't.npz'}", "train")) == 50
    assert load_dataset(f"npz:{tmp_path / 'grey.npz'}", "train", image_size=32).shape == (1, 32, 32)


def test_holdout_keeps_at_least_one_per_class():
    mask = user.holdout(np.array([0, 0, 1, 1, 1, 2]))
    assert mask[:2].sum() == 1 and mask[2:5].sum() == 1 and mask[5] == 0


# ----- bad input: one line, exit 2, nothing written ----------------------------------------------
def _bad_cases(tmp_path: Path) -> list[tuple[str, str, list[str]]]:
    rng = np.random.default_rng(3)
    cases = []
    d = make_rgb_folder(tmp_path / "corrupt", 3)
    (d / "discs" / "bad.png").write_bytes(b"not a png at all")
    cases.append((f"folder:{d}", "bad.png: not a readable image", []))
    d = make_rgb_folder(tmp_path / "mixed", 3)
    Image.fromarray(_shape_image(rng, 0, 48)).save(d / "squares" / "big.png")
    cases.append((f"folder:{d}", "big.png: is 48×48 but", []))
    (tmp_path / "empty").mkdir()
    cases.append((f"folder:{tmp_path / 'empty'}", "empty: no images", []))
    d = make_rgb_folder(tmp_path / "emptyclass", 3)
    (d / "zz").mkdir()
    cases.append((f"folder:{d}", "zz: class folder holds no images", []))
    cases.append((f"folder:{tmp_path / 'nope'}", "nope: no such directory", []))
    np.savez(tmp_path / "len.npz", x=rng.integers(0, 256, (10, 8, 8), dtype=np.uint8), y=np.arange(9))
    cases.append((f"npz:{tmp_path / 'len.npz'}", "len.npz: y has 9 labels but there are 10 images", []))
    np.savez(tmp_path / "range.npz", x=rng.random((10, 8, 8)) * 2)
    cases.append((f"npz:{tmp_path / 'range.npz'}", "range.npz: x is float but not within [0, 1]", []))
    np.savez(tmp_path / "nox.npz", images=np.zeros((3, 8, 8)))
    cases.append((f"npz:{tmp_path / 'nox.npz'}", "nox.npz: no array named 'x'", []))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    cases.append((f"npz:{tmp_path / 'junk.npz'}", "junk.npz: not a readable .npz file", []))
    cases.append((f"folder:{make_rgb_folder(tmp_path / 'odd', 3)}", "H and W divisible by 4", ["--image-size", "30"]))
    return cases


def test_bad_input_is_refused_cleanly(tmp_path):
    for spec, msg, extra in _bad_cases(tmp_path):
        out = tmp_path / "run"
        r = cli("train", "vae", "--dataset", spec, "--backbone", "small", "--epochs", "1", "--out", str(out), *extra)
        assert r.returncode == 2, (spec, r.stderr)
        assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, (spec, r.stderr)
        assert not out.exists(), spec


def test_labels_needed_by_conditional_and_clustering_variants(tmp_path):
    for i in range(10):
        Image.fromarray(np.full((8, 8), i * 20, np.uint8)).save(tmp_path / f"{i}.png")
    spec = f"folder:{tmp_path}"
    with pytest.raises(ConfigError, match="cvae: needs class labels"):
        vaelab.train("cvae", {"backbone": "mlp"}, vaelab.TrainConfig(dataset=spec, epochs=1, progress=False), tmp_path / "r1")
    with pytest.raises(ConfigError, match="n_clusters=K"):
        vaelab.train("vade", {"backbone": "mlp"}, vaelab.TrainConfig(dataset=spec, epochs=1, progress=False), tmp_path / "r2")
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()
    with pytest.raises(ConfigError, match="image_size"):
        vaelab.TrainConfig(dataset="mnist-5k", image_size=2).validate()
    with pytest.raises(ConfigError, match="--image-size: mnist-5k has a fixed size"):
        load_dataset("mnist-5k", "test", image_size=32)


# ----- every image variant on RGB ------------------------------------------------------------------
IMAGE_VARIANTS = [n for n in variants() if get(n).data_kind == "image"]


@pytest.mark.parametrize("name", IMAGE_VARIANTS)
def test_every_image_variant_trains_on_rgb_and_samples_in_colour(name, rgb_folder, tmp_path):
    run = vaelab.train(name, tiny_config(name), vaelab.TrainConfig(dataset=f"folder:{rgb_folder}", epochs=1, batch_size=50,
                                                                   progress=False), tmp_path / name)
    conf = json.loads((run / "config.json").read_text())
    assert conf["model"]["data_shape"] == [3, 32, 32]
    assert conf["model"]["likelihood"] == ("logistic" if "logistic" in get(name).likelihoods else "bernoulli")
    v = vaelab.load(run)
    y = torch.tensor([0, 1, 0, 1]) if v.conditional else None
    try:
        x = v.sample(4, y=y, generator=torch.Generator().manual_seed(0))
    except NotAvailable:  # cvae-quadrant completes images instead
        x = v.reconstruct(torch.rand(4, 3, 32, 32), y)
    assert x.shape == (4, 3, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1
    grid = Image.open(run / ("samples.png" if (run / "samples.png").is_file() else "reconstructions.png"))
    a = np.asarray(grid.convert("RGB")).astype(int)
    assert grid.mode == "RGB" and a.shape[2] == 3 and np.abs(a[..., 0] - a[..., 2]).max() > 0  # colour, not grey
    if name == "vae":  # train → evaluate on RGB: the classifier metrics and a likelihood bound in nats
        ev = vaelab.evaluate_run(run, n_samples=40, iwae_k=4, iwae_n=8, write=False)
        assert isinstance(ev["recon_accuracy"], float) and isinstance(ev["fid"], float)
        assert 0 < ev["neg_elbo"] < 3 * 32 * 32 * math.log(256) * 2


def test_unlabelled_data_trains_and_evaluates_without_classifier_metrics(tmp_path):
    rng = np.random.default_rng(4)
    np.savez(tmp_path / "u.npz", x=rng.integers(0, 256, (40, 12, 12), dtype=np.uint8))
    run = vaelab.train("vae", {"backbone": "small", "latent_dim": 2},
                       vaelab.TrainConfig(dataset=f"npz:{tmp_path / 'u.npz'}", epochs=1, progress=False), tmp_path / "r")
    ev = vaelab.evaluate_run(run, n_samples=20, iwae_k=2, iwae_n=4, write=False)
    assert ev["fid"]["available"] is False and "no labels" in ev["fid"]["reason"]
    assert isinstance(ev["neg_elbo"], float) and ev["meta"]["classifier"] is None


# ----- the discretised logistic ---------------------------------------------------------------------
def test_logistic_masses_sum_to_one_and_match_scipy():
    from scipy.stats import logistic

    levels = torch.arange(256, dtype=torch.float64) / 255
    for logit, log_s in ((-3.0, -6.0), (0.4, -3.0), (2.0, 0.0)):
        lp = discretized_logistic_log_prob(torch.full((256, 1), logit, dtype=torch.float64), levels[:, None],
                                           torch.tensor([log_s], dtype=torch.float64))
        assert abs(float(torch.logsumexp(lp, 0))) < 1e-9
        m, s = 1 / (1 + math.exp(-logit)), math.exp(log_s)
        for k in (0, 37, 128, 255):
            a, b = (math.inf if k == 255 else (k + 0.5) / 255), (-math.inf if k == 0 else (k - 0.5) / 255)
            # the mass of the bin, from the tail that does not cancel
            mass = logistic.cdf(a, m, s) - logistic.cdf(b, m, s) if b < m else logistic.sf(b, m, s) - logistic.sf(a, m, s)
            assert float(lp[k]) == pytest.approx(math.log(mass), rel=1e-7, abs=1e-9)


def test_logistic_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=g).requires_grad_()
    x = torch.randint(0, 256, (2, 3, 4, 4), generator=g).double() / 255
    log_s = torch.tensor([-3.0, -2.0, -4.0], dtype=torch.float64).view(3, 1, 1).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: discretized_logistic_log_prob(a, x, b), (logits, log_s))


def test_logistic_module_sums_over_the_event_and_keeps_sample_dims():
    lik = make_likelihood("logistic", (3, 4, 4))
    x = torch.rand(5, 3, 4, 4)
    assert lik(torch.zeros(7, 5, 3, 4, 4), x).shape == (7, 5)
    assert [n for n, _ in lik.named_parameters()] == ["log_scale"]
    with pytest.raises(ConfigError, match="needs \\(C, H, W\\) images"):
        make_likelihood("logistic", (16,))


def test_compare_on_an_rgb_folder_writes_a_colour_report(rgb_folder, tmp_path):
    out = tmp_path / "study"
    r = cli("compare", "--variants", "vae,vq-vae", "--dataset", f"folder:{rgb_folder}", "--backbone", "small",
            "--epochs", "1", "--phase-epochs", "1", "--n-samples", "40", "--iwae-k", "2", "--iwae-n", "4",
            "--map-points", "40", "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["dataset"] == f"folder:{rgb_folder}" and len(res["runs"]) == 2
    html = (out / "report" / "index.html").read_text()
    assert "img/vae-samples.png" in html
    a = np.asarray(Image.open(out / "report" / "img" / "vae-samples.png").convert("RGB")).astype(int)
    assert np.abs(a[..., 0] - a[..., 1]).max() > 0  # colour pixels, not grey


@pytest.mark.parametrize("size", [28, 64])
def test_rgb_at_28_and_64_pixels_through_image_size(size, tmp_path):
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "c.npz", x=rng.integers(0, 256, (30, 20, 20, 3), dtype=np.uint8), y=np.arange(30) % 3)
    run = vaelab.train("vae", {"backbone": "small", "latent_dim": 2},
                       vaelab.TrainConfig(dataset=f"npz:{tmp_path / 'c.npz'}", image_size=size, epochs=1, progress=False),
                       tmp_path / "r")
    v = vaelab.load(run)
    assert v.config.data_shape == (3, size, size) and v.sample(2).shape == (2, 3, size, size)
    assert Image.open(run / "samples.png").mode == "RGB"
