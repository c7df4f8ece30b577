"""Procedural dSprites (vaelab.data.dsprites): factors, geometry, on-demand images, the original file's reader."""
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from vaelab.cli import main
from vaelab.data import FactorSampler, LazyImages, check_dataset, factor_sampler, head, load_dataset
from vaelab.data import dsprites as d
from vaelab.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def train():
    return load_dataset("dsprites", "train")


def ink(f) -> np.ndarray:
    """bool (64, 64) of one factor combination."""
    return d.render(np.array([f]))[0, 0] > 0


def centre(img) -> tuple[float, float]:
    r, c = np.nonzero(img)
    return float((c + 0.5).mean()), float((r + 0.5).mean())


def test_factors_and_sizes(train):
    assert d.FACTOR_NAMES == ("shape", "scale", "orientation", "posX", "posY")
    assert d.FACTOR_SIZES == (3, 6, 40, 32, 32) and d.N_COMBINATIONS == 737_280
    assert len(train) == 737_280 and train.shape == (1, 64, 64) and train.n_classes == 3
    assert train.class_names == ("square", "ellipse", "heart")
    combos = d.combination_index(np.stack([train.factors[n] for n in d.FACTOR_NAMES], 1))
    assert np.array_equal(np.sort(combos), np.arange(737_280))  # every combination once
    assert np.array_equal(train.labels, train.factors["shape"])
    test = load_dataset("dsprites", "test")
    assert isinstance(test.images, np.ndarray) and test.images.shape == (10_000, 1, 64, 64) and test.images.dtype == np.uint8
    tc = d.combination_index(np.stack([test.factors[n] for n in d.FACTOR_NAMES], 1))
    assert np.unique(tc).size == 10_000 and np.array_equal(test.images, d.render(d.combination_factors(tc)))
    assert np.array_equal(d.combination_factors(d.combination_index(d.combination_factors(np.arange(0, 737_280, 997)))),
                          d.combination_factors(np.arange(0, 737_280, 997)))
    v = d.factor_values(np.array([[2, 5, 20, 31, 0]]))
    assert v["scale"][0] == 1.0 and v["orientation"][0] == pytest.approx(np.pi) and v["posX"][0] == 1.0 and v["posY"][0] == 0.0


def test_deterministic(train):
    a = train.images[[3, 700_000, 5]]
    assert a.tobytes() == train.images[[3, 700_000, 5]].tobytes()
    assert a.tobytes() == load_dataset("dsprites", "train").images[[3, 700_000, 5]].tobytes()
    assert set(np.unique(a)) <= {0, 255} and a.any()


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_position_moves_the_ink_by_the_expected_pixels(shape):
    xs = [centre(ink([shape, 5, 0, i, 9])) for i in range(32)]
    ys = [centre(ink([shape, 5, 0, 9, i])) for i in range(32)]
    cx, cy = np.array([x for x, _ in xs]), np.array([y for _, y in ys])
    assert (np.diff(cx) > 0).all() and (np.diff(cy) > 0).all()  # posX right, posY down
    assert cx[-1] - cx[0] == pytest.approx(44, abs=0.5) and cy[-1] - cy[0] == pytest.approx(44, abs=0.5)
    assert np.ptp([y for _, y in xs]) < 0.5 and np.ptp([x for x, _ in ys]) < 0.5  # the other axis stays put
    if shape == 0:  # the square's ink is centred on the sprite's centre
        assert np.allclose(cx, 10 + 44 * d.POSITIONS, atol=0.5)


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_scale_grows_the_area_as_its_square(shape):
    area = np.array([ink([shape, s, 0, 16, 16]).sum() for s in range(6)])
    assert (np.diff(area) > 0).all()
    assert np.allclose(area / area[-1], d.SCALES ** 2, rtol=0.12)
    assert 150 < ink([0, 5, 0, 16, 16]).sum() < 256  # scale 1: a square of about a fifth of the canvas


def test_orientation():
    sq = [ink([0, 5, k, 13, 20]) for k in range(40)]
    assert (sq[0] != sq[5]).sum() > 20  # 0 vs π/4
    for k in range(30):  # a square is the same a quarter turn later
        assert (sq[k] != sq[k + 10]).sum() <= 2
    for k in range(40):  # the ellipse's long axis, from its second moments, points along the orientation
        r, c = np.nonzero(ink([1, 5, k, 16, 16]))
        xy = np.stack([c - c.mean(), -(r - r.mean())])
        w, v = np.linalg.eigh(np.cov(xy))
        err = (np.arctan2(v[1, 1], v[0, 1]) - d.ORIENTATIONS[k] + np.pi / 2) % np.pi - np.pi / 2
        assert abs(np.degrees(err)) < 2.5, k
    # the heart's lobes (most of its ink) are up at orientation 0, so its ink's centre is above the sprite's
    # centre (a smaller row); half a turn later it is below
    row = 10 + 44 * d.POSITIONS[16]
    assert centre(ink([2, 5, 0, 16, 16]))[1] < row - 0.5 and centre(ink([2, 5, 20, 16, 16]))[1] > row + 0.5


def test_sampler_agrees_with_the_dataset(train):
    s = factor_sampler("dsprites")
    assert isinstance(s, FactorSampler) and isinstance(s, d.DSpritesSampler)
    assert s.factor_names == d.FACTOR_NAMES and s.factor_sizes == (3, 6, 40, 32, 32)
    f = s.sample_factors(20_000, np.random.default_rng(0))
    assert f.dtype == np.int64 and f.shape == (20_000, 5)
    for k, size in enumerate(s.factor_sizes):
        counts = np.bincount(f[:, k], minlength=size)
        assert counts.size == size and counts.min() > 0.7 * 20_000 / size
    rows = np.array([0, 11, 123_456, 737_279])
    facts = np.stack([train.factors[n][rows] for n in d.FACTOR_NAMES], 1)
    obs = s.sample_observations_from_factors(facts, np.random.default_rng(1))
    assert obs.dtype == np.float32 and obs.shape == (4, 1, 64, 64)
    assert np.array_equal(obs, train.images[rows] / 255.0)
    with pytest.raises(ValueError, match="orientation must be in 0..39"):
        s.sample_observations_from_factors(np.array([[0, 0, 40, 0, 0]]), np.random.default_rng(0))


def test_lazy_indexing_equals_eager_rendering(train):
    im = train.images
    assert isinstance(im, d.ProceduralImages) and im.shape == (737_280, 1, 64, 64) and im.ndim == 4 and im.dtype == np.uint8
    facts = np.stack([train.factors[n] for n in d.FACTOR_NAMES], 1)
    eager = d.render(facts[:40])
    assert np.array_equal(im[:40], eager) and np.array_equal(im[7], eager[7]) and np.array_equal(im[-1], d.render(facts[-1:])[0])
    assert np.array_equal(im[np.array([39, 2, 2])], eager[[39, 2, 2]])
    mask = np.zeros(len(im), bool)
    mask[[4, 9]] = True
    assert np.array_equal(im[mask], eager[[4, 9]])
    small = im.take(slice(0, 40))
    assert isinstance(small, LazyImages) and np.array_equal(np.asarray(small), eager)
    assert np.array_equal(head(train, 40).images[:], eager) and len(head(train, 40).factors["posY"]) == 40
    with pytest.raises(DataError, match="drawn on demand"):
        np.asarray(im)
    with pytest.raises(IndexError):
        im[737_280]


def test_the_training_split_holds_no_images():
    tracemalloc.start()
    try:
        ds = load_dataset("dsprites", "train")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    held = sum(v.nbytes for v in vars(ds.images).values() if isinstance(v, np.ndarray))
    assert held <= 737_280 * 8  # the combinations' order only
    assert peak < 100e6  # 3 GB as an array


# ----- the original file --------------------------------------------------------------------------
def _write_npz(path, imgs, classes, **extra):
    np.savez_compressed(path, imgs=imgs, latents_classes=classes, **extra)
    return path


def _synthetic(n=40):
    rng = np.random.default_rng(5)
    combos = np.concatenate([d.test_combinations()[:3], rng.choice(737_280, n - 3, replace=False)])
    combos = np.unique(combos)
    classes = np.concatenate([np.zeros((combos.size, 1), np.int64), d.combination_factors(combos)], 1)
    imgs = (rng.random((combos.size, 64, 64)) < 0.3).astype(np.uint8)
    return imgs, classes


def test_original_file_reader(tmp_path):
    imgs, classes = _synthetic()
    path = _write_npz(tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz", imgs, classes)
    name = f"dsprites:{path}"
    check_dataset(name)
    train, test = load_dataset(name, "train"), load_dataset(name, "test")
    assert isinstance(train.images, LazyImages) and len(train) == imgs.shape[0] and train.n_classes == 3
    combos = d.combination_index(classes[:, 1:])
    row = {int(c): i for i, c in enumerate(combos)}
    for ds in (train, test):
        f = np.stack([ds.factors[n] for n in d.FACTOR_NAMES], 1)
        src = [row[int(c)] for c in d.combination_index(f)]
        assert np.array_equal(ds.images[:], imgs[src][:, None] * 255)
        assert np.array_equal(ds.labels, f[:, 0])
    assert len(test) == np.isin(combos, d.test_combinations()).sum() >= 3 and isinstance(test.images, np.ndarray)
    s = factor_sampler(name)
    f = s.sample_factors(50, np.random.default_rng(0))
    obs = s.sample_observations_from_factors(f, np.random.default_rng(0))
    assert obs.dtype == np.float32 and np.array_equal(obs[:, 0], imgs[[row[int(c)] for c in d.combination_index(f)]])
    absent = np.setdiff1d(np.arange(10), combos)[:1]
    with pytest.raises(DataError, match="holds no image of factors"):
        s.sample_observations_from_factors(d.combination_factors(absent), np.random.default_rng(0))


@pytest.mark.parametrize("change, pattern", [
    (lambda i, c: ({"latents_classes": c}, {}), "no array named 'imgs'"),
    (lambda i, c: ({"imgs": i}, {}), "no array named 'latents_classes'"),
    (lambda i, c: ({"imgs": i * 2, "latents_classes": c}, {}), "imgs holds values other than 0 and 1"),
    (lambda i, c: ({"imgs": i[:, :32], "latents_classes": c}, {}), r"imgs is uint8 \(\d+, 32, 64\)"),
    (lambda i, c: ({"imgs": i.astype(np.float32), "latents_classes": c}, {}), "imgs is float32"),
    (lambda i, c: ({"imgs": i, "latents_classes": c[:-1]}, {}), "latents_classes has 39 rows but imgs has 40"),
    (lambda i, c: ({"imgs": i, "latents_classes": c[:, :5]}, {}), r"latents_classes is int64 \(40, 5\)"),
    (lambda i, c: ({"imgs": i, "latents_classes": c + np.array([0, 0, 0, 40, 0, 0])}, {}), "orientation must be in 0..39"),
    (lambda i, c: ({"imgs": i, "latents_classes": c + np.array([1, 0, 0, 0, 0, 0])}, {}), "column 0 .color. must be 0"),
    (lambda i, c: ({"imgs": i, "latents_classes": np.concatenate([c[:1], c[:-1]])}, {}), "repeats a factor combination"),
])
def test_malformed_files_are_refused_in_one_line(tmp_path, change, pattern):
    imgs, classes = _synthetic()
    arrays, _ = change(imgs, classes)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=pattern) as e:
        load_dataset(f"dsprites:{path}", "train")
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_unreadable_missing_and_testless_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_dataset(f"dsprites:{tmp_path / 'none.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz: not a readable .npz file"):
        load_dataset(f"dsprites:{tmp_path / 'junk.npz'}")
    imgs, classes = _synthetic()
    keep = ~np.isin(d.combination_index(classes[:, 1:]), d.test_combinations())
    path = _write_npz(tmp_path / "f.npz", imgs[keep], classes[keep])
    assert len(load_dataset(f"dsprites:{path}", "train")) == keep.sum()
    with pytest.raises(DataError, match="holds none of the 10,000 test combinations"):
        load_dataset(f"dsprites:{path}", "test")
    with zipfile.ZipFile(path, "a") as z:  # other members (the original's pickled metadata) are never read
        z.writestr("metadata.npy", b"\x93NUMPY pickled")
    assert len(load_dataset(f"dsprites:{path}", "train")) == keep.sum()


def test_specs_and_image_size():
    check_dataset("dsprites")
    with pytest.raises(ConfigError, match="names no file"):
        check_dataset("dsprites:")
    with pytest.raises(ConfigError, match=r"fixed size \(64×64\)"):
        load_dataset("dsprites", image_size=32)
    with pytest.raises(ConfigError, match="no ground-truth factors"):
        factor_sampler("mnist")


def test_train_cli_on_dsprites(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "vae", "--dataset", "dsprites", "--backbone", "small", "--latent-dim", "4", "--epochs", "1",
                 "--train-size", "200", "--batch-size", "50", "--out", str(out)]) == 0, capsys.readouterr().err
    rec = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rec[-1]["images"] == 200 and np.isfinite(rec[-1]["train"]["loss"]) and "test" in rec[-1]
    conf = json.loads((out / "config.json").read_text())
    assert conf["model"]["data_shape"] == [1, 64, 64] and conf["model"]["likelihood"] == "bernoulli"
    assert main(["train", "vae", "--dataset", "dsprites", "--image-size", "32", "--out", str(tmp_path / "r2")]) == 2
    assert "fixed size (64×64)" in capsys.readouterr().err
