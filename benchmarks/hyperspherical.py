"""S-VAE against the plain (Gaussian) VAE at small latent sizes: Davidson et al. (2018), Table 1.

Run by hand; it prints figures and asserts nothing:

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/hyperspherical.py --data-dir $VAELAB_DATA/mnist

The latent size d is the number of latent degrees of freedom, as in the paper and the authors'
code (their examples build the S-VAE with ``z_dim + 1``): the Gaussian VAE gets R^d, the S-VAE the
sphere S^d in R^{d+1} (``latent_dim = d + 1``; ``--same-ambient`` gives it S^{d−1} in R^d instead).
For each d (default 2, 5, 10) it runs one ``vaelab compare`` study of ``vae`` and ``s-vae``
under ``--out``/d{D} (resumable: a finished study is only re-read) on dynamically binarised full MNIST,
each variant with its own recommended training settings (``--protocol fast``), and prints the test
IWAE negative log-likelihood (K importance samples, on the test images binarised once with a fixed
seed) and the −ELBO beside the paper's values. The paper's networks are MLPs (256-128 hidden units)
trained to convergence with early stopping; here the backbone (default ``small``) and the budget
(default 10 epochs) are the study's, so compare the ordering, not the absolute values.

Measured results (commands, seeds, machines, dates): docs/results/hyperspherical.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path

# Davidson et al. 2018, Table 1 (MNIST, dynamically binarised): log-likelihood estimates in nats.
PAPER_LL = {2: {"vae": -135.73, "s-vae": -132.50}, 5: {"vae": -110.21, "s-vae": -108.43},
            10: {"vae": -93.84, "s-vae": -93.16}}


def main(argv: list[str] | None = None) -> None:
    from vaelab.report import finish_study
    from vaelab.study import Settings, run_study

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--dims", default="2,5,10", help="comma list of latent sizes")
    p.add_argument("--seeds", default="0", help="comma list of seeds")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--backbone", default="small")
    p.add_argument("--iwae-k", type=int, default=1000)
    p.add_argument("--iwae-n", type=int, default=2000, help="test images for the IWAE bound")
    p.add_argument("--same-ambient", action="store_true", help="S-VAE on S^(d-1) in R^d instead of S^d")
    p.add_argument("--kappa-link", choices=["exp", "softplus"], default=None, help="the S-VAE's κ head (default: the variant's)")
    p.add_argument("--kl-warmup-steps", type=int, default=None, help="the S-VAE's KL warm-up (default: the variant's)")
    p.add_argument("--g-cor", action="store_true", help="the S-VAE with the score-function gradient term g_cor")
    p.add_argument("--out", default="runs/hyperspherical")
    a = p.parse_args(argv)
    dims = [int(d) for d in a.dims.split(",")]
    seeds = tuple(int(s) for s in a.seeds.split(","))
    rows = []
    for d in dims:
        svae = {} if a.same_ambient else {"latent_dim": d + 1}
        if a.kappa_link:
            svae["kappa_link"] = a.kappa_link
        if a.kl_warmup_steps is not None:
            svae["kl_warmup_steps"] = a.kl_warmup_steps
        if a.g_cor:
            svae["g_cor"] = True
        s = Settings(variants=["vae", "s-vae"], out=Path(a.out) / f"d{d}", dataset="mnist", data_dir=a.data_dir,
                     backbone=a.backbone, latent_dim=d, epochs=a.epochs, seeds=seeds, protocol="fast",
                     binarize="dynamic", n_samples=1000, iwae_k=a.iwae_k, iwae_n=a.iwae_n, map_points=1000,
                     progress=False, overrides={"s-vae": svae} if svae else {})
        res = run_study(s, finish=finish_study)
        minutes = res["compute"]["total_seconds"] / 60  # recorded training + evaluation, also for reused runs
        for name in ("vae", "s-vae"):
            m = res["variants"][name]["metrics"]

            def get(k: str) -> str:
                v = m.get(k, {})
                if "mean" not in v:
                    return "n/a"
                return f"{v['mean']:.2f}" + (f" ± {v['sd']:.2f}" if v.get("sd") is not None else "")
            label = name if name == "vae" else f"s-vae (S^{d - 1 if a.same_ambient else d})"
            rows.append((d, label, get("iwae_nll"), get("neg_elbo"), -PAPER_LL.get(d, {}).get(name, float("nan")), minutes))
    print(f"\nfull MNIST, dynamic binarisation, backbone {a.backbone}, {a.epochs} epochs, seeds {a.seeds}, "
          f"IWAE K={a.iwae_k} on {a.iwae_n} test images (nats; lower is better)")
    print("| latent | variant | IWAE NLL | −ELBO | paper NLL | study min (train + eval, both variants) |")
    print("|---|---|---|---|---|---|")
    for d, name, iw, el, paper, minutes in rows:
        print(f"| {d} | {name} | {iw} | {el} | {paper:.2f} | {minutes:.1f} |")


if __name__ == "__main__":
    main()
