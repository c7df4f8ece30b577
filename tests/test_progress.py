"""Where training stands (``Variant.progress``: the phase, the run's and the phase's update counts): the
trainer records it and a checkpoint keeps it, and checkpoints of the versions in which VaDE, VQ-VAE,
β-VAE and the feature generators kept their own (``phase_id``, ``phase_index``, ``last_step``,
``critic_updates``) still load, evaluate and resume as they did (``Variant.retired_progress``)."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

import battery
import vaelab
from vaelab.data import Dataset
from vaelab.io import atomic_write_bytes
from vaelab.models.base import NotAvailable
from vaelab.training.checkpoint import CHECKPOINT, load_model_weights, read_checkpoint
from vaelab.training.config import TrainConfig
from vaelab.training.trainer import Trainer


def old_format(v, old_key: str | None, value: int) -> dict[str, torch.Tensor]:
    """``v``'s checkpoint tensors as an older version wrote them: no ``progress``, ``old_key`` holding ``value``."""
    tensors = {f"model.{k}": t for k, t in v.state_dict().items() if k != "progress"}
    if old_key is not None:
        tensors[f"model.{old_key}"] = torch.tensor(value, dtype=torch.int64)
    return tensors


def test_the_trainer_records_phases_and_steps_and_a_loaded_run_keeps_them(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=50, train_size=100, progress=False, eval_every=0, binarize="none")
    run = vaelab.train("cvae-quadrant", {"backbone": "mlp", "latent_dim": 4, "baseline_epochs": 1}, cfg, tmp_path / "r")
    v = vaelab.load(run)
    assert (v.phase, v.trained_steps, v.phase_steps) == ("train", 4, 2)  # 2 baseline updates, then 2 of the CVAE
    assert vaelab.build("cvae-quadrant").phase is None  # a model no trainer has touched


@pytest.mark.parametrize("name, old_key, value, expect", [
    ("vade", "phase_id", 1, {"phase": "train"}),
    ("vade", "phase_id", 0, {"phase": "pretrain"}),
    ("vq-vae", "phase_index", 1, {"phase": "prior"}),
    ("vq-vae", "phase_index", 0, {"phase": "train"}),
    ("beta-vae", "last_step", 11, {"trained_steps": 12}),  # the last update's step; trained_steps counts updates
    ("f-clswgan", "critic_updates", 16, {"phase_steps": 16}),
    ("f-vaegan-d2", "critic_updates", 7, {"phase_steps": 7}),
    ("cvae-quadrant", None, 0, {"phase": None}),  # never stored: loaded runs were evaluated with the CVAE's loss
])
def test_an_old_checkpoint_brings_its_phase_and_steps(name, old_key, value, expect):
    v = battery.build(name)
    w = battery.build(name, seed=1)
    load_model_weights(w, old_format(v, old_key, value))
    assert {k: getattr(w, k) for k in expect} == expect
    assert all(torch.equal(t, w.state_dict()[k]) for k, t in v.state_dict().items() if k != "progress")


def test_old_checkpoints_evaluate_as_before():
    # VQ-VAE: the stored phase decides whether its prior samples
    v = battery.build("vq-vae")
    load_model_weights(v, old_format(battery.build("vq-vae"), "phase_index", 0))
    with pytest.raises(NotAvailable):
        v.sample(2)
    load_model_weights(v, old_format(battery.build("vq-vae"), "phase_index", 1))
    assert v.sample(2).shape == (2, 1, 28, 28)
    # β-VAE: the stored last step decides the capacity of an evaluation at step 0
    v = vaelab.build("beta-vae", **{**battery.tiny_config("beta-vae"), "mode": "capacity", "capacity_steps": 100, "capacity_max": 10.0})
    load_model_weights(v, old_format(v, "last_step", 40))
    torch.manual_seed(0)
    _, terms = v.eval().loss(battery.tiny_batch(), 0)
    assert float(terms["capacity"]) == 4.0
    # VaDE: the stored phase decides its loss; a retired key (retired_state) is still dropped
    v = battery.build("vade")
    tensors = old_format(v, "phase_id", 1)
    tensors["model.elbo_images"] = torch.tensor(0.0)
    load_model_weights(v, tensors)
    torch.manual_seed(0)
    assert {"kl_z", "kl_c"} <= set(v.eval().loss(battery.tiny_batch(), 0)[1])


def _features(n=24, seed=0):
    g = np.random.default_rng(seed)
    return Dataset("synthetic", "train", g.random((n, 12), dtype=np.float32), np.arange(n) % 7)


def _train(run_dir, epochs, name="f-vaegan-d2", resume=False):
    run_dir.mkdir(exist_ok=True)
    torch.manual_seed(0)
    cfg = {**battery.tiny_config(name), "transductive": False, "unseen": []}
    v = vaelab.build(name, **cfg)
    Trainer(v, TrainConfig(epochs=epochs, batch_size=8, optimizer="adam", progress=False, eval_every=0, seed=0),
            run_dir, _features()).fit(resume=resume)
    return v


def test_an_old_generator_run_resumes_with_its_critic_count(tmp_path):
    """3 updates an epoch: after 2 epochs the critic count is 6, so the generator's next turn (every 5th
    update) comes one update later than a count restarted at 0 would give it."""
    ref = _train(tmp_path / "ref", 3)
    assert ref.phase_steps == 9
    for old_key, same in (("critic_updates", True), (None, False)):  # the old count, and (to show it matters) none
        run = tmp_path / f"old-{old_key}"
        v = _train(run, 2)
        tensors, state = read_checkpoint(run)
        tensors = {k: t for k, t in tensors.items() if k != "model.progress"}
        if old_key is not None:
            tensors[f"model.{old_key}"] = torch.tensor(v.phase_steps)
        atomic_write_bytes(run / CHECKPOINT, st_save(tensors, metadata={"state": json.dumps(state)}))
        resumed = _train(run, 3, resume=True)
        equal = all(torch.equal(p, q) for p, q in zip(ref.parameters(), resumed.parameters()))
        assert equal == same, old_key
