"""Model selection without unseen data (zsl/select.py): the grid, a clearly better candidate wins, no
unseen-class label or feature is read, reruns reuse the candidates, and the command line records it."""
import dataclasses
import json

import numpy as np
import pytest

from vaelab.cli import main
from vaelab.errors import ConfigError
from vaelab.zsl import methods
from vaelab.zsl.calibrate import pseudo_unseen_classes, validation_split
from vaelab.zsl.config import ZSLConfig
from vaelab.zsl.select import grid, select

from zsl_synthetic import linear_data, linear_split, write_mat_files


def test_the_grid_of_each_method():
    g = grid(ZSLConfig(method="f-vaegan-d2", epochs=10))
    assert g == {"lr": [1e-3, 1e-4], "gamma": [1.0, 10.0, 100.0], "epochs": [5, 10, 20], "n_synth_factor": [0.5, 1.0, 2.0]}
    z = grid(ZSLConfig(method="zero-vae-gan", setting="transductive"))  # mnist-5k: 30 epochs by default
    assert z["epochs"] == [15, 30, 60] and z["pseudo_fraction"] == [0.25, 0.5, 0.75] and "gamma" not in z
    assert "pseudo_fraction" not in grid(ZSLConfig(method="zero-vae-gan", setting="transductive", self_training="none"))
    assert grid(ZSLConfig(method="ridge")) == {"n_synth_factor": [0.5, 1.0, 2.0]}
    assert grid(ZSLConfig(method="eszsl")) == {}
    over = grid(ZSLConfig(method="f-clswgan", select=True, select_grid={"epochs": [9, 3], "gamma": [5.0]}))
    assert over["epochs"] == [3, 9] and "gamma" not in over  # sorted; an axis the method lacks is ignored


@pytest.mark.parametrize("bad, needle", [({"select_grid": {"lr": [1e-3]}}, "needs --select"),
                                         ({"select": True, "select_grid": {"width": [1]}}, "--select-grid"),
                                         ({"select": True, "select_grid": {"epochs": [0]}}, "--select-grid epochs"),
                                         ({"select": True, "select_grid": {"lr": []}}, "non-empty"),
                                         ({"select": True, "select_grid": {"pseudo_fraction": [1.5]}}, "pseudo_fraction")])
def test_bad_selection_options_are_config_errors(bad, needle):
    with pytest.raises(ConfigError, match=needle):
        ZSLConfig(**bad).validate()


def poisoned(sp):
    """The split with every unseen-class test feature NaN and every unseen label nonsense."""
    return dataclasses.replace(sp, x_test_unseen=np.full_like(sp.x_test_unseen, np.nan),
                               y_test_unseen=np.full_like(sp.y_test_unseen, 999))


def test_selection_picks_the_sensible_lr_without_reading_unseen_data(tmp_path, monkeypatch):
    sp = poisoned(linear_split())
    cfg = ZSLConfig(method="zero-vae-gan", batch_size=16, n_synth=100, model={"hidden": 64}, select=True,
                    select_grid={"lr": [1e-9, 1e-3], "epochs": [8, 16], "n_synth_factor": [0.5, 1.0]})
    vsp = validation_split(sp, pseudo_unseen_classes(sp.seen), cfg.setting, cfg.seed)
    assert set(vsp.unseen) | set(vsp.seen) <= set(sp.seen)
    final, rec = select(cfg, vsp, tmp_path, sp)
    by = {(c["lr"], c["epochs"], c["n_synth_factor"]): c for c in rec["candidates"]}
    assert set(by) == {(1e-9, 8, 1.0), (1e-9, 16, 1.0), (1e-3, 8, 1.0), (1e-3, 16, 1.0), (rec["chosen"]["lr"],
                                                                                                rec["chosen"]["epochs"], 0.5)}
    assert rec["chosen"]["lr"] == 1e-3 and final.lr == 1e-3 and final.n_epochs == rec["chosen"]["epochs"]
    # lr 1e-9 leaves the generator untrained: chance T1 (0.5, two pseudo-unseen classes); 1e-3 finds both classes
    assert max(by[(1e-9, e, 1.0)]["T1"] for e in (8, 16)) <= 0.55 and by[(1e-3, 16, 1.0)]["T1"] >= 0.75
    assert max(by[(1e-3, e, 1.0)]["H_cal"] for e in (8, 16)) > max(by[(1e-9, e, 1.0)]["H_cal"] for e in (8, 16)) + 0.15
    assert rec["pseudo_unseen"] == vsp.unseen and not set(rec["pseudo_unseen"]) & set(sp.unseen)
    n_default = methods.synth_count(cfg, sp)
    assert final.n_synth == round(rec["chosen"]["n_synth_factor"] * n_default) and rec["final"]["n_synth"] == final.n_synth
    assert all(np.isfinite(c["H_cal"]) for c in rec["candidates"])
    # a rerun reads every candidate back: nothing is trained again
    monkeypatch.setattr("vaelab.zsl.select.run_generator", lambda *a, **k: pytest.fail("a scored candidate was retrained"))
    assert select(cfg, vsp, tmp_path, sp)[1] == rec


def test_a_diverging_candidate_is_recorded_and_never_chosen(tmp_path):
    sp = linear_split()
    cfg = ZSLConfig(method="f-vaegan-d2", batch_size=32, n_synth=50, model={"hidden": 16}, select=True,
                    select_grid={"lr": [1e6, 1e-3], "gamma": [3.0], "epochs": [2], "n_synth_factor": [1.0, 2.0]})
    vsp = validation_split(sp, pseudo_unseen_classes(sp.seen), cfg.setting, cfg.seed)
    final, rec = select(cfg, vsp, tmp_path, sp)
    first = rec["candidates"][0]
    assert first["lr"] == 1e6 and "non-finite" in first["diverged"] and first["H_cal"] is None
    assert rec["chosen"]["lr"] == 1e-3 and len(rec["candidates"]) == 3  # stage 2 adds factor 2 to the winner
    # f-VAEGAN-D2's γ (an axis) is never confused with the candidates' calibrated-stacking γ (gamma_cal)
    assert [c["gamma"] for c in rec["candidates"]] == [3.0] * 3 and final.model["gamma"] == 3.0
    assert sorted(p.name for p in (tmp_path / "select").iterdir() if p.is_dir()) == ["lr0.001-g3", "lr1e+06-g3"]


@pytest.mark.parametrize("method, setting, grid_args", [
    ("ridge", "inductive", []),
    ("zero-vae-gan", "transductive", ["--select-grid", "epochs=1,2", "--select-grid", "lr=0.001",
                                      "--select-grid", "pseudo_fraction=0.25,0.5", "--select-grid", "n_synth_factor=1"]),
    ("eszsl", "inductive", []),
])
def test_select_from_the_command_line(method, setting, grid_args, tmp_path, capsys):
    fp, sp, _ = write_mat_files(tmp_path)
    out = tmp_path / "run"
    argv = ["zsl", "--features", str(fp), "--splits", str(sp), "--method", method, "--setting", setting, "--out", str(out),
            "--n-synth", "20", "--refine-epochs", "1", "--set", "hidden=16", "--select", *grid_args]
    assert main(argv) == 0
    line = capsys.readouterr().out
    rec = json.loads((out / "zsl.json").read_text())
    sel = rec["selection"]
    if method == "eszsl":
        assert "skipped" in sel and "skipped" in rec["diagnostics"] and "selected" not in line
        return
    assert "selected" in line and "gen→real" in line
    assert sel["pseudo_unseen"] == linear_data()[4]  # val_loc's classes, as calibrated stacking's
    assert rec["calibration"]["source"] == "select" and rec["gamma"] == sel["validation"]["gamma_cal"]
    assert not (out / "calibration").exists()  # γ comes from the chosen candidate's validation run
    assert rec["config"]["select"] is True and len(sel["candidates"]) >= 2
    if method == "zero-vae-gan":
        assert {c["pseudo_fraction"] for c in sel["candidates"]} == {0.25, 0.5}
        assert sel["final"]["epochs"] == sel["chosen"]["epochs"] and rec["before_self_training"]
    d = rec["diagnostics"]
    assert 0 <= d["gen_seen_to_real_seen"] <= 1 and 0 <= d["probe_unseen"] <= 1 and 0 <= d["probe_seen"] <= 1
    conf = d["confusion_unseen"]
    assert np.allclose(np.array(conf["shares"]).sum(1), 1) and conf["correct"] == pytest.approx(rec["u"])
    assert main(argv) == 0  # a rerun reuses zsl.json


@pytest.mark.parametrize("argv, needle", [(["--select-grid", "lr"], "AXIS="), (["--select-grid", "lr=a,b"], "numbers"),
                                          (["--select-grid", "lr=1e-3"], "needs --select"),
                                          (["--select", "--select-grid", "lr=nan"], "lr")])
def test_bad_selection_flags_are_one_line_errors(argv, needle, tmp_path, capsys):
    assert main(["zsl", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err
    assert not (tmp_path / "o").exists()


def _features(seed=0):
    from vaelab.zsl.features import Features

    x, y, att, unseen, _ = linear_data(seed=seed, n_per_class=30)
    rng = np.random.default_rng(seed + 7)
    test = rng.random(len(y)) < 0.25
    return Features(dataset="synthetic", fold=0, seen=[c for c in range(len(att)) if c not in unseen], unseen=unseen,
                    attributes=att, x_train=x[~test], y_train=y[~test], x_test=x[test], y_test=y[test], meta={})


def test_an_any_shot_run_has_the_validation_split_of_its_zero_shot_run():
    """The premise of shared selections: k labelled unseen images change the split, not the validation split."""
    from vaelab.zsl.features import make_split
    from vaelab.zsl.select import split_digest

    f = _features()
    splits = {k: make_split(f, "inductive", k, seed=3) for k in (0, 1, 5)}
    assert len({split_digest(sp) for sp in splits.values()}) == 3  # the splits differ (the digest sees it)
    vals = {k: validation_split(sp, pseudo_unseen_classes(sp.seen), "inductive", 3) for k, sp in splits.items()}
    assert len({split_digest(v) for v in vals.values()}) == 1
    other_seed = make_split(f, "inductive", 0, seed=4)
    assert split_digest(validation_split(other_seed, pseudo_unseen_classes(other_seed.seen), "inductive", 4)) != \
        split_digest(vals[0])


def test_an_any_shot_run_reuses_the_zero_shot_selection(tmp_path, monkeypatch):
    from vaelab.zsl.features import make_split

    f = _features()
    cfg = ZSLConfig(method="zero-vae-gan", batch_size=16, model={"hidden": 32}, select=True, seed=3,
                    select_grid={"lr": [1e-3], "epochs": [2, 4], "n_synth_factor": [1.0]})
    sp0, sp5 = make_split(f, "inductive", 0, 3), make_split(f, "inductive", 5, 3)
    v0 = validation_split(sp0, pseudo_unseen_classes(sp0.seen), "inductive", 3)
    v5 = validation_split(sp5, pseudo_unseen_classes(sp5.seen), "inductive", 3)
    zero = tmp_path / "k0"
    _, rec0 = select(cfg, v0, zero, sp0)
    assert "shared" not in rec0 and (zero / "select" / "key.json").is_file()
    trained = []
    real = methods.run_generator
    monkeypatch.setattr("vaelab.zsl.select.run_generator", lambda *a, **k: trained.append(1) or real(*a, **k))
    few = dataclasses.replace(cfg, shots=5)
    final, rec5 = select(few, v5, tmp_path / "k5", sp5, shared=zero / "select")
    assert trained == [] and rec5["shared"] == str(zero / "select") and not (tmp_path / "k5" / "select").exists()
    assert rec5["candidates"] == rec0["candidates"] and rec5["chosen"] == rec0["chosen"] and final.shots == 5
    # another config (lr) selects on its own: the shared directory's key names another config
    other = dataclasses.replace(few, select_grid={**few.select_grid, "lr": [1e-4]})
    _, rec_o = select(other, v5, tmp_path / "other", sp5, shared=zero / "select")
    assert "shared" not in rec_o and trained and (tmp_path / "other" / "select" / "key.json").is_file()
    # a zero-shot run selected before keys were written: its zsl.json names the config
    (zero / "select" / "key.json").unlink()
    (zero / "zsl.json").write_text(json.dumps({"config": cfg.to_dict()}))
    trained.clear()
    _, rec_b = select(few, v5, tmp_path / "k5b", sp5, shared=zero / "select")
    assert trained == [] and rec_b["shared"] == str(zero / "select") and (zero / "select" / "key.json").is_file()
