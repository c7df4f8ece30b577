"""How the IWAE bound moves with K: the bound of one trained run on the same test images for several K.

The IWAE bound −L_K decreases towards −log p(x) as K grows (Burda et al. 2016); the K of an evaluation is
chosen where a larger K no longer moves the estimate by more than its standard error. For every K this
prints the mean −L_K ± SE over the images and the paired difference to the largest K (mean ± SE of the
per-image differences: the same images, so most of the image-to-image spread cancels).

    python benchmarks/iwae_k.py RUN_DIR --k 100,1000,5000 --n 200 [--out docs/results/iwae-k]

The inputs are what `vaelab evaluate` scores (the run's binarisation, its fixed binarisation seed), and
the noise of each K is seeded as in `vaelab evaluate --seed 0`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vaelab import scoring
from vaelab.data import binarize, load_dataset, to_tensor
from vaelab.io import atomic_write_json, atomic_write_text, read_json
from vaelab.provenance import environment, versions
from vaelab.rundir import load


def per_image_iwae(run_dir: Path, ks: list[int], n: int, seed: int = 0) -> dict[int, np.ndarray]:
    conf = read_json(run_dir / "config.json")
    v = load(run_dir, "cpu")
    test = load_dataset(conf["train"]["dataset"], "test", conf["train"].get("data_dir"), image_size=conf["train"].get("image_size"))
    x_in = binarize(to_tensor(test.images[:n]), conf["train"].get("binarize", "none"),
                    torch.Generator().manual_seed(scoring.BINARIZE_SEED))
    out = {}
    for k in ks:
        t0 = time.perf_counter()
        keep: dict[str, np.ndarray] = {}
        with torch.no_grad():
            scoring.likelihood_scores(v, x_in, None, k, n, seed, 512, lambda s: None, lambda s: None, per_image=keep)
        out[k] = keep["iwae_nll"]
        print(f"K={k}: {out[k].mean():.3f} ± {scoring.standard_error(out[k]):.3f} nats ({time.perf_counter() - t0:.0f}s)",
              file=sys.stderr, flush=True)
    return out


def summary(vals: dict[int, np.ndarray]) -> list[dict]:
    top = vals[max(vals)]
    return [{"K": k, "iwae_nll": float(a.mean()), "se": scoring.standard_error(a),
             "minus_largest_K": float((a - top).mean()), "minus_largest_K_se": scoring.standard_error(a - top)}
            for k, a in sorted(vals.items())]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--k", default="100,1000,5000", help="comma list of K")
    p.add_argument("--n", type=int, default=200, help="the first N test images")
    p.add_argument("--out", help="write OUT.json and OUT.md")
    a = p.parse_args()
    ks = [int(s) for s in a.k.split(",")]
    rows = summary(per_image_iwae(a.run_dir, ks, a.n))
    env = environment()
    res = {"run_dir": str(a.run_dir), "n_images": a.n, "rows": rows, "command": " ".join(["python", *sys.argv]),
           "versions": versions(), "machine": env["machine"]["summary"], "git_commit": env.get("git_commit")}
    print(json.dumps(res, indent=1))
    if a.out:
        atomic_write_json(Path(a.out + ".json"), res)
        lines = [f"# IWAE bound against K ({a.run_dir}, first {a.n} test images)", "",
                 f"Command: `{res['command']}`; {res['machine']}; vaelab commit {res['git_commit']}.", "",
                 f"| K | −L_K (nats) ± SE | − (−L_{max(ks)}), paired ± SE |", "|---|---|---|"]
        lines += [f"| {r['K']} | {r['iwae_nll']:.3f} ± {r['se']:.3f} | {r['minus_largest_K']:.3f} ± {r['minus_largest_K_se']:.3f} |"
                  for r in rows]
        atomic_write_text(Path(a.out + ".md"), "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
