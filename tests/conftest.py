import os
import sys

sys.path.insert(0, os.path.dirname(__file__))  # tests/battery.py
os.environ.setdefault("VAELAB_CACHE", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "vaelab"))


# ----- shared data and reference classifiers for the metric tests (additive) --------------------------
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from helpers import find_full_mnist  # noqa: E402


# A reduced but real MNIST classifier for the test session (2 epochs, no augmentation; the full recipe
# of `vaelab classifier` is 6 epochs with ±2 px shifts). It is cached under its own name in the test
# cache dir, so it is trained once per fresh checkout (~40 s on 1 busy core).
TEST_MNIST_RECIPE = dict(epochs=2, shift=0)
# A quick mnist-5k classifier, patched in as that dataset's recipe for the session so that
# `vaelab evaluate` / `vaelab classifier` on mnist-5k runs stay fast in tests.
TEST_MNIST5K_RECIPE = dict(epochs=3)


@pytest.fixture(scope="session")
def full_mnist_dir() -> Path:
    d = find_full_mnist()
    if d is None:
        pytest.skip("full MNIST not found: set VAELAB_DATA to a directory holding mnist/")
    return d


@pytest.fixture(scope="session")
def mnist_test_classifier(full_mnist_dir):
    """One reduced reference classifier for MNIST, shared by the whole session (and cached)."""
    from vaelab.reference_classifier import Recipe, load_or_train

    return load_or_train("mnist", full_mnist_dir, recipe=Recipe(**TEST_MNIST_RECIPE))


@pytest.fixture(scope="session")
def mnist5k_quick_classifier():
    """The mnist-5k reference classifier with a quick recipe, patched in for the rest of the session."""
    from vaelab import reference_classifier as classifier

    mp = pytest.MonkeyPatch()
    mp.setitem(classifier.RECIPES, "mnist-5k", classifier.Recipe(**TEST_MNIST5K_RECIPE))
    try:
        yield classifier.load_or_train("mnist-5k")
    finally:
        mp.undo()
