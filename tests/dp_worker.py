"""Trains tiny runs of several variants, for tests/test_parallel.py: run as one process
(``python tests/dp_worker.py ...``) or as several (``python -m torch.distributed.run --nproc_per_node 2
tests/dp_worker.py ...``). Each variant trains into OUT/VARIANT with the same seed and global batch.

Arguments: OUT OPTIMIZER VARIANT[,VARIANT...] [EPOCHS [resume]]; OPTIMIZER "sgd" swaps the run's
optimizer for plain SGD (whose step is linear in the gradient, so processes that combine their
gradients exactly stay within rounding of one process), "run" keeps the run's (Adam).

The failure tests set ``DP_FAIL=RANK:STEP:raise|kill``: that rank raises (or SIGKILLs itself) at
the start of that update; ``DP_CHECKPOINT_EVERY=S`` sets rank 0's checkpoint_every_s (the
other ranks' stays 0: the processes disagree on when a checkpoint is due).
"""
import os
import signal
import sys

import torch

import vaelab.training.trainer as trainer_mod
from vaelab import parallel
from vaelab.rundir import train
from vaelab.training.config import TrainConfig

MODEL = {
    "vae": {"backbone": "small", "latent_dim": 8},
    "beta-vae": {"backbone": "small", "latent_dim": 8},
    "cvae": {"backbone": "small", "latent_dim": 8},
    "gmvae": {"backbone": "small", "latent_dim": 8},
    "vae-gan": {"backbone": "small", "latent_dim": 8},
    "cvae-quadrant": {"backbone": "small", "latent_dim": 8},
    "vq-vae": {"backbone": "small", "num_codes": 16, "prior_channels": 8, "prior_layers": 2, "prior_epochs": 1},
}


def sgd_factory(cfg):
    def make(params, lr=None, **kw):
        return torch.optim.SGD(params, lr=1e-4 if lr is None else lr * 0.1)
    return make


def inject_failure(spec: str) -> None:
    rank, step, kind = spec.split(":")
    step_fn = trainer_mod.Trainer._step

    def failing(self, batch, st, opts, phase):
        if parallel.rank() == int(rank) and st.step == int(step):
            if kind == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError(f"injected failure at step {st.step}")
        return step_fn(self, batch, st, opts, phase)

    trainer_mod.Trainer._step = failing


def main(out, optimizer, variants, epochs=1, resume=False):
    parallel.init_from_env(torch.device("cpu"))  # joined once here, so the runs below share one process group
    if os.environ.get("DP_FAIL"):
        inject_failure(os.environ["DP_FAIL"])
    if optimizer == "sgd":
        trainer_mod.make_optimizer_factory = sgd_factory
    for name in variants.split(","):
        tc = TrainConfig(dataset="mnist-5k", train_size=120, batch_size=40, epochs=int(epochs), seed=3,
                         binarize="dynamic", progress=False, device="cpu",
                         checkpoint_every_s=float(os.environ.get("DP_CHECKPOINT_EVERY", "0")) if parallel.rank() == 0 else 0.0)
        if resume:
            train(None, resume=True, run_dir=f"{out}/{name}", extra_epochs=int(epochs))
        else:
            train(name, dict(MODEL[name]), tc, f"{out}/{name}")
    parallel.close()


if __name__ == "__main__":
    main(*sys.argv[1:4], *(sys.argv[4:5] or [1]), resume=sys.argv[5:6] == ["resume"])
    parallel.leave(0)
