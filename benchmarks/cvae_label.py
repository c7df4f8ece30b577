"""Does a trained CVAE obey its label? Diagnostics of saved cvae runs (prints, asserts nothing).

For each run directory: conditional accuracy of prior samples (the reference classifier's class
against the requested label, 200 samples per class), how often decoding test codes with another
label changes the digit (does the decoder use y or z for the class), how well the posterior means
alone separate the classes (nearest class mean), and how far the prior's class means μ_y are from
the origin compared with the encoder's class means.

    vaelab train cvae --dataset mnist-5k --backbone small --latent-dim 16 --optimizer rmsprop \\
        --set prior_hidden=0 --out runs/cvae-h0
    python benchmarks/cvae_label.py runs/cvae-h0 runs/cvae-h256
"""
from __future__ import annotations

import argparse

import torch

from vaelab import rundir
from vaelab.data import load_dataset, to_tensor
from vaelab.reference_classifier import load_or_train


def diagnose(run: str, n_test: int = 1000, per_class: int = 200) -> dict[str, float]:
    m = rundir.load(run).eval()
    conf = rundir.run_config(run)
    dataset, data_dir = conf["train"]["dataset"], conf["train"].get("data_dir")
    clf = load_or_train(dataset, data_dir)
    te = load_dataset(dataset, "test", data_dir)
    x, y = to_tensor(te.images[:n_test]), torch.as_tensor(te.labels[:n_test])
    with torch.no_grad():
        mu = m.encode(x, y).mean
        other = (y + 1) % m.config.n_classes
        swapped = clf.predict(torch.sigmoid(m.decode(mu, other).float()))
        wanted = torch.arange(m.config.n_classes).repeat_interleave(per_class)
        samples = m.sample(wanted.shape[0], wanted, generator=torch.Generator().manual_seed(0))
        means = torch.stack([mu[y == k].mean(0) for k in range(m.config.n_classes)])
        prior = m.conditional_prior(torch.arange(m.config.n_classes))
    return {
        "cond_accuracy": float((clf.predict(samples) == wanted.numpy()).mean()),
        "swap_follows_new_label": float((swapped == other.numpy()).mean()),
        "swap_keeps_old_digit": float((swapped == y.numpy()).mean()),
        "nearest_class_mean_accuracy": float((torch.cdist(mu, means).argmin(1) == y).float().mean()),
        "prior_mean_norm": float(prior.mean.norm(dim=-1).mean()) if prior.mean.dim() > 1 else 0.0,
        "encoder_class_mean_norm": float(means.norm(dim=1).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="cvae run directories")
    args = ap.parse_args()
    for run in args.runs:
        d = diagnose(run)
        print(run, "  ".join(f"{k}={v:.3f}" for k, v in d.items()))


if __name__ == "__main__":
    main()
