"""What the zero-shot benchmark's features carry (run by hand; figures in docs/results/zero-shot-2026-12-06.md).

For each fold it asks two questions with plain linear models (scikit-learn), none of which is a ZSL
method (two of them read the unseen classes' labels, which no method may):

* **Are the unseen classes there?** ``unseen probe``: a logistic regression trained on the unseen
  classes' *labelled* training features, accuracy on their test features (an upper bound for T1);
  ``oracle u``: one trained on the real features of all ten classes, per-class accuracy on the
  unseen test images among all ten (an upper bound for GZSL u with these features).
* **Do the attributes transfer?** A ridge regression from features to class attributes fitted on
  the seen classes only (as ESZSL's embedding is): ``attribute T1`` classifies unseen test images
  by the nearest unseen attribute vector (cosine), and ``attribute acc.`` is the mean accuracy of
  the thresholded (0.5) predicted attributes on the unseen test images, over the attributes that
  differ between the fold's unseen classes (``majority`` is that of always predicting each
  attribute's most common value among the unseen test images).

    VAELAB_DATA=DIR python benchmarks/zsl_features.py --datasets mnist,fashion-mnist
"""
from __future__ import annotations

import argparse

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge

from vaelab.metrics.zsl import per_class_accuracy
from vaelab.zsl.benchmark import FOLDS, attribute_matrix, table_of
from vaelab.zsl.features import load_features, make_split, normaliser


def diagnose(dataset: str, fold: int) -> dict:
    f = load_features(dataset, fold)
    s = make_split(f)
    norm = normaliser(f)
    binary = attribute_matrix(dataset).astype(np.float64)
    unseen_train = np.isin(f.y_train, f.unseen)
    xu, yu = norm(f.x_train[unseen_train]), f.y_train[unseen_train]
    probe = LogisticRegression(max_iter=3000).fit(xu, yu)
    every = LogisticRegression(max_iter=3000).fit(np.vstack([s.x_train, xu]), np.concatenate([s.y_train, yu]))
    ridge = Ridge(alpha=1.0).fit(s.x_train, binary[s.y_train])
    pred = ridge.predict(s.x_test_unseen)
    unit = binary[f.unseen] / np.linalg.norm(binary[f.unseen], axis=1, keepdims=True)
    nearest = np.asarray(f.unseen)[(pred @ unit.T).argmax(1)]
    truth = binary[s.y_test_unseen]
    varying = binary[f.unseen].std(0) > 0
    majority = np.maximum(truth.mean(0), 1 - truth.mean(0))
    return {
        "dataset": dataset, "fold": fold, "unseen": f.unseen,
        "unseen_probe": per_class_accuracy(probe.predict(s.x_test_unseen), s.y_test_unseen, f.unseen),
        "oracle_u": per_class_accuracy(every.predict(s.x_test_unseen), s.y_test_unseen, f.unseen),
        "attribute_t1": per_class_accuracy(nearest, s.y_test_unseen, f.unseen),
        "attribute_acc": float(((pred > 0.5) == truth).mean(0)[varying].mean()),
        "majority": float(majority[varying].mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="mnist,fashion-mnist")
    args = ap.parse_args()
    print("| dataset | fold (unseen) | unseen probe | oracle u | attribute T1 | attribute acc. | majority |")
    print("|---|---|---|---|---|---|---|")
    for ds in args.datasets.split(","):
        for fold in range(len(FOLDS[table_of(ds)])):
            r = diagnose(ds, fold)
            print(f"| {ds} | {fold} ({', '.join(map(str, r['unseen']))}) | {r['unseen_probe']:.1%} | {r['oracle_u']:.1%} | "
                  f"{r['attribute_t1']:.1%} | {r['attribute_acc']:.1%} | {r['majority']:.1%} |",
                  flush=True)


if __name__ == "__main__":
    main()
