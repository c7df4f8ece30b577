"""vaelab's zero-shot benchmark on MNIST and Fashion-MNIST: the contract (version ``VERSION``).

There is no public ZSL benchmark on these datasets, so vaelab defines one (docs/zsl.md):

* **Class attributes**: a hand-written table per dataset (``ATTRIBUTES``): 10 classes × 16 (MNIST)
  or 20 (Fashion-MNIST) binary attributes, each defined in one sentence. No two classes share a
  vector. Methods receive each class's vector scaled to unit length (``class_attributes``), as is
  usual for attribute vectors in ZSL.
* **Folds**: three seen/unseen splits per dataset (``FOLDS``), 7 seen and 3 unseen classes each.
  ``mnist-5k`` uses MNIST's table and folds.
* **Splits** (after Xian et al. 2018's GZSL protocol): labelled training examples = the seen
  classes' training images; test-seen = the seen classes' test images (held out from training);
  test-unseen = the unseen classes' test images; in the transductive setting the unseen classes'
  *training* images are given without their labels.

Changing the table, the definitions or the folds changes the benchmark: bump ``VERSION``.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError

VERSION = 1

#: (name, definition) of each attribute, then one 0/1 row per class (class order of the dataset's labels).
ATTRIBUTES: dict[str, dict] = {
    "mnist": {
        "classes": ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        "attributes": [
            ("loop", "The digit contains at least one closed loop."),
            ("two_loops", "The digit contains two closed loops."),
            ("loop_top", "A closed loop lies in the upper half of the digit."),
            ("loop_bottom", "A closed loop lies in the lower half of the digit."),
            ("vertical_stroke", "A long, nearly vertical straight stroke."),
            ("horizontal_bar", "A straight horizontal stroke (a bar on top, a base or a crossbar)."),
            ("diagonal", "A long straight diagonal stroke."),
            ("curve_top", "A curved stroke runs across the top of the digit."),
            ("curve_bottom", "A curved stroke runs across the bottom of the digit."),
            ("symmetric_lr", "Roughly symmetric under a left-right mirror."),
            ("symmetric_tb", "Roughly symmetric under a top-bottom mirror."),
            ("opens_left", "A curved stroke opens to the left, like a reversed c."),
            ("opens_right", "A large curved stroke opens to the right, like a c."),
            ("corner", "Two straight strokes meet at a sharp corner."),
            ("crossing", "Two strokes cross each other."),
            ("three_ends", "The strokes have three or more free ends."),
        ],
        "matrix": [
            # lp 2l lt lb vs hb dg ct cb sl st ol or co cr 3e
            [1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0],  # 0
            [0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0],  # 1
            [0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0],  # 2
            [0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 1],  # 3
            [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1],  # 4
            [0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0],  # 5
            [1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0],  # 6
            [0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0],  # 7
            [1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 1, 0],  # 8
            [1, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],  # 9
        ],
    },
    "fashion-mnist": {
        "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
        "attributes": [
            ("upper_body", "Worn on the upper body."),
            ("legs", "Covers the legs."),
            ("feet", "Worn on the feet."),
            ("carried", "Carried rather than worn."),
            ("long_sleeves", "Has sleeves reaching the wrist."),
            ("short_or_no_sleeves", "Worn on the upper body with short sleeves or none."),
            ("two_leg_tubes", "Splits into two tubes, one per leg."),
            ("front_fastening", "Closes with buttons or a zip down the front."),
            ("collar", "Has a collar."),
            ("thick_fabric", "Made of knitted or thick fabric."),
            ("handle", "Has a handle or a strap to hold it by."),
            ("heel", "Has a raised heel."),
            ("open_toe", "Leaves the toes uncovered."),
            ("laces", "Is tied with laces."),
            ("covers_ankle", "Reaches above the ankle."),
            ("flat_sole", "Has a flat rubber sole."),
            ("rigid", "Keeps its shape when not worn."),
            ("tall", "Its outline is much taller than wide."),
            ("outerwear", "Worn over other clothes."),
            ("straps", "Its upper is made of straps rather than a closed surface."),
        ],
        "matrix": [
            # ub lg ft ca ls ss 2t ff co th ha he ot la ca fs ri ta ow st
            [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # T-shirt/top
            [0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],  # Trouser
            [1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # Pullover
            [1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],  # Dress
            [1, 0, 0, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],  # Coat
            [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1],  # Sandal
            [1, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # Shirt
            [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0],  # Sneaker
            [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0],  # Bag
            [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0],  # Ankle boot
        ],
    },
}

#: Unseen classes of each fold; the other seven are seen.
FOLDS: dict[str, list[list[int]]] = {
    "mnist": [[2, 6, 9], [0, 4, 7], [3, 5, 8]],
    "fashion-mnist": [[2, 3, 7], [0, 4, 9], [1, 5, 6]],
}

DATASETS = ("mnist", "fashion-mnist", "mnist-5k")


def table_of(dataset: str) -> str:
    """The attribute table and folds a dataset uses (``mnist-5k`` is a subset of MNIST)."""
    if dataset not in DATASETS:
        raise ConfigError(f"--dataset: {dataset!r} has no ZSL benchmark; choose one of {', '.join(DATASETS)}")
    return "mnist" if dataset == "mnist-5k" else dataset


def attribute_matrix(dataset: str) -> np.ndarray:
    """The 0/1 table (10, A) of ``dataset``."""
    return np.asarray(ATTRIBUTES[table_of(dataset)]["matrix"], dtype=np.float32)


def class_attributes(dataset: str) -> np.ndarray:
    """Each class's attribute vector scaled to unit length: (10, A) float32, the methods' conditions."""
    a = attribute_matrix(dataset)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def fold_classes(dataset: str, fold: int) -> tuple[list[int], list[int]]:
    """(seen, unseen) class lists of ``fold``."""
    folds = FOLDS[table_of(dataset)]
    if not isinstance(fold, int) or isinstance(fold, bool) or not 0 <= fold < len(folds):
        raise ConfigError(f"--fold: {fold!r} is not a fold of {dataset}; choose 0–{len(folds) - 1}")
    unseen = sorted(folds[fold])
    return [c for c in range(10) if c not in unseen], unseen
