"""Every registered variant passes the shared battery (parametrised over the registry: none escapes);
the battery's save/load comparison fails on a renamed, missing or extra key and on a changed value."""
import re

import pytest
import torch

import battery
import vaelab
from battery import CHECKS, check_save_load


@pytest.mark.parametrize("name", vaelab.variants())
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.replace("check_", ""))
def test_battery(name, check):
    check(name)


@pytest.mark.parametrize("name", vaelab.variants())
def test_save_load_round_trip(name, tmp_path):
    check_save_load(name, tmp_path)


# ----- the save/load check can fail ------------------------------------------------------------------
KEY = "encoder.trunk.net.0.weight"  # a tensor of the vae's state


def _vae_state():
    return {k: t.clone() for k, t in battery.build("vae").state_dict().items()}


@pytest.mark.parametrize("change, message", [
    (lambda s: s.__setitem__(f"renamed.{KEY}", s.pop(KEY)), f"missing ['{KEY}'], extra ['renamed.{KEY}']"),
    (lambda s: s.pop(KEY), f"missing ['{KEY}'], extra []"),
    (lambda s: s.__setitem__("extra", torch.zeros(1)), "missing [], extra ['extra']"),
    (lambda s: s[KEY].view(-1)[0].add_(1e-6), f"test: {KEY} differs"),
    (lambda s: s.__setitem__(KEY, s[KEY].double()), f"test: {KEY} is torch.float64, was torch.float32"),
], ids=["renamed-key", "missing-key", "extra-key", "changed-value", "changed-dtype"])
def test_state_comparison_catches(change, message):
    expected, actual = _vae_state(), _vae_state()
    battery.assert_same_state("vae", expected, actual, "test")
    change(actual)
    with pytest.raises(AssertionError, match=re.escape(message)):
        battery.assert_same_state("vae", expected, actual, "test")


def _renames_a_key(tensors):
    tensors[f"model.renamed.{KEY}"] = tensors.pop(f"model.{KEY}")


def _changes_a_value(tensors):
    tensors[f"model.{KEY}"] = tensors[f"model.{KEY}"] * 1.01


def _lenient_load(model, tensors):
    """A non-strict loader that drops one tensor: the rebuilt model keeps its fresh value there."""
    state = {k[len("model."):]: t for k, t in tensors.items() if k.startswith("model.") and k != f"model.{KEY}"}
    model.load_state_dict(state, strict=False)


@pytest.mark.parametrize("corrupt, loader, message", [
    (_renames_a_key, None, f"vae: checkpoint: state keys differ: missing ['{KEY}'], extra ['renamed.{KEY}']"),
    (_changes_a_value, None, f"vae: checkpoint: {KEY} differs"),
    (None, _lenient_load, f"vae: after load: {KEY} differs"),
], ids=["checkpoint-renames-a-key", "checkpoint-changes-a-value", "loader-skips-a-key"])
def test_save_load_check_fails_on_a_faulty_round_trip(corrupt, loader, message, tmp_path, monkeypatch):
    """check_save_load itself fails when the checkpoint read back renames a key or changes a value, or
    when a loader leaves a tensor at the rebuilt model's initial value."""
    read = battery.read_checkpoint

    def faulty_read(path):
        tensors, state = read(path)
        if corrupt is not None:
            corrupt(tensors)
        return tensors, state

    monkeypatch.setattr(battery, "read_checkpoint", faulty_read)
    if loader is not None:
        monkeypatch.setattr(battery, "load_model_weights", loader)
    with pytest.raises(AssertionError, match=re.escape(message)):
        battery.check_save_load("vae", tmp_path)
