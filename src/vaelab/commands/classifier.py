"""vaelab classifier --dataset mnist [--data-dir DIR] [--retrain]"""
from __future__ import annotations

import argparse

from . import stderr_log

ORDER = 35


def add_parser(sub) -> None:
    p = sub.add_parser("classifier", help="train (or show) the reference classifier of a dataset",
                       description="The reference CNN behind the classifier metrics of `vaelab evaluate`. Trained "
                                   "deterministically on the dataset's training split on first use and cached in the "
                                   "user cache dir; a cached one whose data hash or recipe does not match is retrained.")
    p.add_argument("--dataset", default="mnist", help="mnist | fashion-mnist | mnist-5k | moving-mnist[-5k] (the judge of digit and motion) | "
                   "folder:DIR | npz:FILE (default mnist)")
    p.add_argument("--data-dir", default=None, help="directory holding the IDX files")
    p.add_argument("--image-size", type=int, default=None, metavar="N", help="folder:/npz: datasets: resize to N×N")
    p.add_argument("--retrain", action="store_true", help="train anew even if a matching classifier is cached")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..reference_classifier import classifier_dir, load_or_train  # local: torch; keeps `vaelab --help` at 0.1 s
    from ..data import check_dataset  # local: torch; keeps `vaelab --help` at 0.1 s

    check_dataset(args.dataset, "--dataset")
    clf = load_or_train(args.dataset, args.data_dir, retrain=args.retrain, log=stderr_log, image_size=args.image_size)
    m = clf.meta
    stem = m["stem"]
    print(f"dataset        {m['dataset']} ({m['n_train']} training images, {m['n_test']} test images)")
    print(f"test accuracy  {m['test_accuracy']:.4f}")
    if "motion_accuracy" in m:
        print(f"motion acc.    {m['motion_accuracy']:.4f} (the sequence judge's second head)")
    print(f"trained        {m['created']} in {m['train_seconds']:.0f}s ({m['torch_threads']} threads)")
    print(f"recipe         {m['arch']}, " + ", ".join(f"{k}={v}" for k, v in m["recipe"].items()))
    print(f"data sha256    {m['data_sha256']}")
    print(f"weights        {classifier_dir() / (stem + '.safetensors')}")
    return 0
