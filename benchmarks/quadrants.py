"""CVAE quadrant completion on full MNIST (Sohn et al. 2015, §5.1) beside Pyro's reproduction.

Run by hand; it prints figures and asserts nothing:

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/quadrants.py --data-dir $VAELAB_DATA/mnist

For 1, 2 and 3 given quadrants it runs one ``vaelab compare`` study of ``cvae-quadrant`` under
``--out``/given{k} (resumable) with the variant's defaults (Pyro's tutorial: 784-512-512 MLPs, a 200-d
latent, a deterministic baseline NN first; Adam, lr 1e-3, grey-level images) and prints the test
set's negative conditional log-likelihood of the missing quadrants, in nats per image:
the baseline NN, the CVAE's −ELBO (one z per image; Pyro's "CVAE (Monte Carlo)" row) and its
importance-sampled estimate with S = 100 (tighter). Pyro trains up to 101 epochs with early stopping;
the budget here is ``--baseline-epochs`` + ``--epochs``.

Measured results: docs/results/cvae.md, "Quadrant completion".
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

PYRO_CVAE = {1: 71.8, 2: 51.0, 3: 24.2}  # Pyro examples/cvae README, "CVAE (Monte Carlo)", nats


def main(argv: list[str] | None = None) -> None:
    from vaelab.study import Settings, run_study

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--dataset", default="mnist", help="mnist (the benchmark) or mnist-5k (a quick check)")
    p.add_argument("--given", default="1,2,3", help="comma list of given-quadrant counts")
    p.add_argument("--seeds", default="0")
    p.add_argument("--epochs", type=int, default=20, help="CVAE epochs")
    p.add_argument("--baseline-epochs", type=int, default=10, help="epochs of the baseline NN")
    p.add_argument("--out", default="runs/quadrants")
    a = p.parse_args(argv)
    rows = []
    for k in (int(g) for g in a.given.split(",")):
        t0 = time.process_time()
        s = Settings(variants=["cvae-quadrant"], out=Path(a.out) / f"given{k}", dataset=a.dataset, data_dir=a.data_dir,
                     backbone="mlp", latent_dim=200, epochs=a.epochs, seeds=tuple(int(x) for x in a.seeds.split(",")),
                     protocol="fast", n_samples=100, iwae_k=0, iwae_n=0, map_points=1000, progress=False,
                     overrides={"cvae-quadrant": {"given_quadrants": k, "baseline_epochs": a.baseline_epochs}})
        m = run_study(s)["variants"]["cvae-quadrant"]["metrics"]
        val = {key: m.get(key, {}).get("mean", float("nan")) for key in ("cond_nll_baseline", "cond_neg_elbo", "cond_nll")}
        rows.append((k, val, (time.process_time() - t0) / 60))
    print(f"\n{a.dataset} test set, {a.baseline_epochs} + {a.epochs} epochs, seeds {a.seeds} "
          "(negative conditional log-likelihood of the missing quadrants, nats; lower is better)")
    print("| given | NN baseline | CVAE −ELBO | CVAE NLL (S=100) | Pyro CVAE | CPU min |")
    print("|---|---|---|---|---|---|")
    for k, val, cpu in rows:
        print(f"| {k} | {val['cond_nll_baseline']:.1f} | {val['cond_neg_elbo']:.1f} | {val['cond_nll']:.1f} | "
              f"{PYRO_CVAE[k]:.1f} | {cpu:.1f} |")


if __name__ == "__main__":
    main()
