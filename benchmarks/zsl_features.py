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
  attribute's most common value among the unseen test images). The other direction, the one the
  generators take: ``mean T1`` classifies them by the nearest unseen class mean predicted from the
  attributes by the ``ridge`` method's regression (its λ chosen on the seen classes).

``--extractor contrastive`` asks the same of the contrastive features (docs/zsl.md, "Features").

    VAELAB_DATA=DIR python benchmarks/zsl_features.py --datasets mnist,fashion-mnist
"""
from __future__ import annotations

import argparse

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge

from vaelab.metrics.zsl import per_class_accuracy
from vaelab.zsl.benchmark import FOLDS, attribute_matrix, table_of
from vaelab.zsl.features import EXTRACTORS, load_features, make_split, normaliser
from vaelab.zsl.ridge import RidgeGenerator


def diagnose(dataset: str, fold: int, extractor: str = "supervised") -> dict:
    f = load_features(dataset, fold, extractor=extractor)
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
    means = RidgeGenerator(s.x_train, s.y_train, s.attributes, f.seen).mean(f.unseen)
    closest = np.asarray(f.unseen)[((s.x_test_unseen[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)]
    return {
        "dataset": dataset, "fold": fold, "extractor": extractor, "unseen": f.unseen,
        "unseen_probe": per_class_accuracy(probe.predict(s.x_test_unseen), s.y_test_unseen, f.unseen),
        "oracle_u": per_class_accuracy(every.predict(s.x_test_unseen), s.y_test_unseen, f.unseen),
        "attribute_t1": per_class_accuracy(nearest, s.y_test_unseen, f.unseen),
        "attribute_acc": float(((pred > 0.5) == truth).mean(0)[varying].mean()),
        "majority": float(majority[varying].mean()),
        "mean_t1": per_class_accuracy(closest, s.y_test_unseen, f.unseen),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="mnist,fashion-mnist")
    ap.add_argument("--folds", default=None, help="comma list (default every fold)")
    ap.add_argument("--extractor", default="supervised", choices=EXTRACTORS)
    args = ap.parse_args()
    print("| dataset | fold (unseen) | extractor | unseen probe | oracle u | attribute T1 | attribute acc. | majority | mean T1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for ds in args.datasets.split(","):
        folds = [int(f) for f in args.folds.split(",")] if args.folds else range(len(FOLDS[table_of(ds)]))
        for fold in folds:
            r = diagnose(ds, fold, args.extractor)
            print(f"| {ds} | {fold} ({', '.join(map(str, r['unseen']))}) | {args.extractor} | {r['unseen_probe']:.1%} | "
                  f"{r['oracle_u']:.1%} | {r['attribute_t1']:.1%} | {r['attribute_acc']:.1%} | {r['majority']:.1%} | "
                  f"{r['mean_t1']:.1%} |", flush=True)


if __name__ == "__main__":
    main()
