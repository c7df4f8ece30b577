"""The reference classifier: deterministic training, the hash-checked cache, the CLI, and the
classifier-based metrics on real MNIST (FID, IS)."""
import json

import numpy as np
import pytest
import torch

from vaelab import reference_classifier as C
from vaelab import metrics
from vaelab.cli import main
from vaelab.data import Dataset, load_dataset


@pytest.fixture(scope="module")
def tiny_sets():
    tr = load_dataset("mnist-5k", "train")
    te = load_dataset("mnist-5k", "test")
    return (Dataset("tiny", "train", tr.images[:300], tr.labels[:300]),
            Dataset("tiny", "test", te.images[:100], te.labels[:100]))


TINY = C.Recipe(epochs=1, batch_size=50)


def test_training_is_deterministic(tiny_sets):
    a = C.train_classifier(tiny_sets[0], TINY).state_dict()
    b = C.train_classifier(tiny_sets[0], TINY).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = C.train_classifier(tiny_sets[0], C.Recipe(epochs=1, batch_size=50, seed=1)).state_dict()
    assert not torch.equal(a["out.weight"], c["out.weight"])


def test_cache_is_used_only_when_it_matches(tiny_sets, tmp_path, monkeypatch):
    monkeypatch.setenv("VAELAB_CACHE", str(tmp_path))
    tr, te = tiny_sets
    first = C.obtain(tr, te, TINY)
    stem = C.cache_stem("tiny", TINY)
    meta = json.loads((tmp_path / "classifiers" / f"{stem}.json").read_text())
    assert meta["data_sha256"] == C.data_hash(tr) and meta["test_accuracy"] == first.test_accuracy
    assert 0 <= meta["test_accuracy"] <= 1 and meta["recipe"] == TINY.to_dict()

    trained = []
    real_train = C.train_classifier
    monkeypatch.setattr(C, "train_classifier", lambda *a, **k: trained.append(1) or real_train(*a, **k))
    again = C.obtain(tr, te, TINY)  # matching: loaded, not trained
    assert not trained and again.meta["created"] == first.meta["created"]
    x = torch.rand(7, 1, 28, 28)
    np.testing.assert_array_equal(again.run(x)[1], first.run(x)[1])

    changed = Dataset("tiny", "train", tr.images.copy(), tr.labels)
    changed.images[0, 0, 0, 0] ^= 1  # one pixel of the training data differs: the cache is not trusted
    C.obtain(changed, te, TINY)
    assert len(trained) == 1

    wpath = tmp_path / "classifiers" / f"{stem}.safetensors"
    blob = bytearray(wpath.read_bytes())
    blob[-1] ^= 0xFF  # weights that no longer match their record
    wpath.write_bytes(bytes(blob))
    C.obtain(changed, te, TINY)
    assert len(trained) == 2
    C.obtain(changed, te, TINY)
    assert len(trained) == 2  # and the rewritten entry is trusted again
    assert not list((tmp_path / "classifiers").glob("*.tmp"))


def test_recipe_names_the_cache_entry():
    assert C.cache_stem("mnist", C.default_recipe("mnist")) == "mnist"
    assert C.cache_stem("mnist", C.Recipe(epochs=1, n_train=10)).startswith("mnist-")


def test_classifier_cli_trains_then_shows(mnist5k_quick_classifier, capsys):
    assert main(["classifier", "--dataset", "mnist-5k"]) == 0  # cached by the fixture: shown, not retrained
    out = capsys.readouterr().out
    assert f"test accuracy  {mnist5k_quick_classifier.test_accuracy:.4f}" in out
    assert mnist5k_quick_classifier.meta["created"] in out
    assert mnist5k_quick_classifier.test_accuracy > 0.9


def test_classifier_cli_bad_dataset(capsys):
    assert main(["classifier", "--dataset", "cifar"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--dataset" in err and len(err.splitlines()) == 1


# ----- classifier metrics on real MNIST ---------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist_features(full_mnist_dir, mnist_test_classifier):
    test = load_dataset("mnist", "test", full_mnist_dir)
    train = load_dataset("mnist", "train", full_mnist_dir)
    f_test, p_test = mnist_test_classifier.run(test.images)
    f_train, _ = mnist_test_classifier.run(train.images[-10000:])  # images the reduced classifier did not see
    return test, f_test, p_test, f_train


def test_reduced_classifier_is_real(mnist_test_classifier, mnist_features):
    test, _, p_test, _ = mnist_features
    acc = float((p_test.argmax(1) == test.labels).mean())
    assert acc == pytest.approx(mnist_test_classifier.test_accuracy) and acc > 0.98


def test_inception_score_of_real_mnist(mnist_features):
    _, _, p_test, _ = mnist_features
    assert metrics.inception_score(p_test) >= 9.5
    assert metrics.inception_score(np.repeat(p_test[:1], 10000, 0)) == pytest.approx(1.0, abs=1e-9)


def test_fid_train_vs_test_small_noise_large(mnist_test_classifier, mnist_features):
    _, f_test, _, f_train = mnist_features
    assert metrics.fid(f_train, f_test) < 5
    noise = torch.rand(10000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    f_noise, _ = mnist_test_classifier.run(noise)
    assert metrics.fid(f_noise, f_test) > 100
    assert metrics.fid(f_test, f_test) == pytest.approx(0.0, abs=1e-6)


def test_precision_recall_train_vs_test_high(mnist_features):
    _, f_test, _, f_train = mnist_features
    pr = metrics.precision_recall(f_test[:3000], f_train[:3000], k=3)
    assert pr["precision"] > 0.6 and pr["recall"] > 0.6


@pytest.mark.slow
@pytest.mark.parametrize("dataset,target", [("mnist", 0.992), ("fashion-mnist", 0.91)])
def test_full_recipe_accuracy(dataset, target, full_mnist_dir):
    """The standard recipes reach the stated test accuracies (minutes on CPU: -m slow)."""
    clf = C.load_or_train(dataset, full_mnist_dir if dataset == "mnist" else None)
    assert clf.test_accuracy >= target
