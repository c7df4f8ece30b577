"""Behaviour fingerprint of a refactor: train a few variants briefly and hash what they produce.

For each variant: train on mnist-5k (small backbone, 1 epoch, seed 0, CPU, fp32), then hash every
tensor of the checkpoint (model weights, optimizer state, RNG states) and evaluate the run with small
evaluation sizes. The output (JSON) is compared before and after a change that should not change
behaviour: equal checkpoint hashes mean bitwise-identical training, equal numbers the same evaluation.

    python benchmarks/fingerprint.py --out /tmp/fp-before > before.json
    (change the code)
    python benchmarks/fingerprint.py --out /tmp/fp-after > after.json
    python benchmarks/fingerprint.py --diff before.json after.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

VARIANTS = ("vae", "vade", "vae-gan", "vq-vae", "cvae")
TIMING = ("seconds_per_epoch", "images_per_s", "train_seconds", "load_avg")  # machine state, not results


def tensor_hashes(run_dir: Path) -> dict[str, str]:
    from safetensors.torch import load_file

    tensors = load_file(str(run_dir / "checkpoint.safetensors"))
    return {k: hashlib.sha256(t.contiguous().view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes()).hexdigest()[:16]
            for k, t in sorted(tensors.items())}


def numbers(ev: dict) -> dict:
    """eval.json without timings, run paths and dates."""
    return {k: v for k, v in sorted(ev.items()) if k != "meta" and not k.startswith(TIMING)}


def fingerprint(out: Path, variants) -> dict:
    import vaelab

    res = {}
    for name in variants:
        run = out / name
        shutil.rmtree(run, ignore_errors=True)
        vaelab.train(name, _model(name), vaelab.TrainConfig(dataset="mnist-5k", epochs=1, seed=0, progress=False), run)
        ev = vaelab.evaluate_run(run, n_samples=500, iwae_k=20, iwae_n=50, seed=0, write=True)
        hashes = tensor_hashes(run)
        whole = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:16]
        res[name] = {"checkpoint": whole, "tensors": hashes, "eval": numbers(ev)}
        print(f"{name}: checkpoint {whole}", file=sys.stderr, flush=True)
    return res


def _model(name: str) -> dict:
    """Small backbone; extra phases (VaDE's pretraining, VQ-VAE's prior) cut to one epoch."""
    from vaelab.registry import get

    model = {"backbone": "small"}
    import dataclasses

    for f in dataclasses.fields(get(name).Config):
        if f.name.endswith("_epochs") and isinstance(f.default, int) and not isinstance(f.default, bool):
            model[f.name] = 1
    return model


def diff(a: dict, b: dict) -> int:
    bad = 0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            print(f"{name}: only in one file")
            bad += 1
            continue
        same_ck = a[name]["checkpoint"] == b[name]["checkpoint"]
        keys = set(a[name]["eval"]) | set(b[name]["eval"])
        ev_diff = sorted(k for k in keys if a[name]["eval"].get(k) != b[name]["eval"].get(k))
        print(f"{name}: checkpoint {'identical' if same_ck else 'DIFFERS'} ({a[name]['checkpoint']} / {b[name]['checkpoint']}); "
              f"eval {'identical' if not ev_diff else 'DIFFERS in ' + ', '.join(ev_diff)}")
        if not same_ck:
            ta, tb = a[name]["tensors"], b[name]["tensors"]
            for label, keys in (("only before", sorted(set(ta) - set(tb))), ("only after", sorted(set(tb) - set(ta))),
                                ("differ", sorted(k for k in set(ta) & set(tb) if ta[k] != tb[k]))):
                if keys:
                    print(f"   tensors {label}: {', '.join(keys)[:2000]}")
        bad += (not same_ck) + bool(ev_diff)
    return 1 if bad else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/vaelab-fingerprint", help="where the runs go (deleted and rewritten)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--diff", nargs=2, metavar=("BEFORE", "AFTER"), help="compare two fingerprint files")
    a = p.parse_args()
    if a.diff:
        return diff(json.loads(Path(a.diff[0]).read_text()), json.loads(Path(a.diff[1]).read_text()))
    print(json.dumps(fingerprint(Path(a.out), a.variants.split(",")), indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
