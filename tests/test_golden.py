"""Golden loss values: every registered variant's loss terms, train_step terms and per-optimizer
gradient norms, per phase, equal the values stored in tests/golden/losses.json (to ``RTOL``). A
change of any objective, weight, default, stop-gradient or term name fails here, naming the variant
and the term; an intended change is recorded by running ``python tests/golden/regenerate.py``
(never by the tests). ``golden_losses`` says what is computed and how (float64, seeds, phases).

The second half shows that the check can fail: one term ×1.01 inside the model's own ``loss`` /
``train_step`` output, a loss weight ×1.01 in the config, any stored value ×1.01, and a term or
phase that appears or disappears."""
import copy

import pytest

import battery
import vaelab
from golden_losses import ATOL, compare, compute, failure_message, load, overrides_train_step
from vaelab.registry import get
from variant_configs import TEST_CONFIGS, config_for

STORED = load()


@pytest.mark.parametrize("name", vaelab.variants())
def test_losses_equal_the_golden_values(name):
    problems = compare(name, STORED.get(name), compute(name))
    assert not problems, failure_message(problems)


def test_golden_file_holds_exactly_the_registered_variants():
    stale = sorted(set(STORED) - set(vaelab.variants()))
    assert not stale, failure_message([f"{n}: golden values of a variant that is not registered" for n in stale])


def test_computation_is_deterministic():
    """Two computations in one process agree bitwise (the regeneration script checks every variant so;
    here the ones with the most random draws: the vMF rejection sampler, the critics' fakes, MI permutations)."""
    for name in ("s-vae", "f-vaegan-d2", "s3vae"):
        assert not compare(name, compute(name), compute(name), rtol=0.0, atol=0.0), name


# ----- the check can fail ----------------------------------------------------------------------------
def _scale_term(monkeypatch, name: str, term: str, factor: float) -> None:
    """Make variant ``name``'s ``loss`` (and its own ``train_step``) report ``term`` × ``factor``; only
    the outermost call scales, so a train_step that goes through loss scales once."""
    cls, depth = get(name), [0]

    def wrap(method, terms_of):
        def wrapped(self, *args, **kwargs):
            depth[0] += 1
            try:
                out = method(self, *args, **kwargs)
            finally:
                depth[0] -= 1
            terms = terms_of(out)
            if depth[0] == 0 and term in terms:
                terms[term] = terms[term] * factor
            return out
        return wrapped

    monkeypatch.setattr(cls, "loss", wrap(cls.loss, lambda out: out[1]))
    if overrides_train_step(name):
        monkeypatch.setattr(cls, "train_step", wrap(cls.train_step, lambda out: out))


TERMS = ("loss", "train_step")  # the sources holding terms ("update" holds optimizers' gradient norms)


def _places(case, term):
    """(phase, source) of the stored values of ``term`` that ×1.01 can move (not exactly 0)."""
    return sorted((p, s) for p, by_source in case.items() for s, terms in by_source.items()
                  if s in TERMS and term in terms and abs(terms[term]) * 0.01 > ATOL)


def _scaled_term(name):
    """The term the demonstration scales: the variant's smallest non-zero stored one (the ``loss`` term
    when it has no other), where ×1.01 is the smallest absolute move."""
    values = [(abs(x), t) for by_source in STORED[name].values() for s, terms in by_source.items() if s in TERMS
              for t, x in terms.items() if abs(x) * 0.01 > ATOL]
    others = [v for v in values if v[1] != "loss"]
    return min(others or values)[1]


@pytest.mark.parametrize("name", vaelab.variants())
def test_one_term_scaled_by_1_01_inside_the_model_fails(name, monkeypatch):
    term = _scaled_term(name)
    _scale_term(monkeypatch, name, term, 1.01)
    problems = compare(name, STORED[name], compute(name))
    assert problems, f"{name}: {term} ×1.01 passed the golden check"
    assert all(line.startswith(f"{name}, phase ") and f"term {term!r} is " in line for line in problems), problems
    assert len(problems) == len(_places(STORED[name], term)), problems


@pytest.mark.parametrize("name, key", [("beta-vae", "beta"), ("info-vae", "lam"), ("wae", "lam"), ("vq-vae", "beta"),
                                       ("s3vae", "mi_weight"), ("vae-gan", "gamma"), ("f-clswgan", "cls_weight"),
                                       ("f-vaegan-d2", "gamma"), ("zero-vae-gan", "cls_weight"), ("beta-tcvae", "beta"),
                                       ("factor-vae", "gamma"), ("dip-vae", "lambda_od")])
def test_a_loss_weight_scaled_by_1_01_fails(name, key, monkeypatch):
    """A 1% change of a weight is caught, including β of β-VAE (its KL is ~1e-5 of the loss at
    initialisation) and the weights that only the players' update objectives hold (vae-gan's γ on its
    decoder's, the ZSL generators'), which show in the ``update`` gradient norms."""
    value = getattr(battery.build(name).config, key)
    monkeypatch.setitem(TEST_CONFIGS, name, {**config_for(name), key: value * 1.01})
    assert compare(name, STORED[name], compute(name)), f"{name}: {key} ×1.01 passed the golden check"


@pytest.mark.parametrize("name", sorted(STORED))
def test_every_stored_value_scaled_by_1_01_fails(name):
    """Every stored value of every phase and source, ×1.01 on its own, is reported (on the stored values:
    the comparison, not the model). A value stored as exactly 0 (vq-vae's ``codebook`` term, zero by
    construction with its EMA codebook) cannot be moved by scaling: it is moved to 1e-9 instead, which
    the absolute tolerance catches."""
    case = STORED[name]
    for phase, by_source in case.items():
        for source, terms in by_source.items():
            for term, value in terms.items():
                moved = copy.deepcopy(case)
                moved[phase][source][term] = value * 1.01 if value else 1e-9
                problems = compare(name, case, moved)
                assert len(problems) == 1 and f"phase {phase!r}, {source}" in problems[0] and f" {term!r} is " in problems[0], \
                    (term, problems)


def test_a_term_or_phase_that_appears_or_disappears_fails():
    case = STORED["vq-vae"]
    gone = copy.deepcopy(case)
    del gone["train"]["loss"]["recon"]
    assert compare("vq-vae", case, gone) == ["vq-vae, phase 'train', loss(): term 'recon' disappeared "
                                             f"(golden value {case['train']['loss']['recon']!r})"]
    extra = copy.deepcopy(case)
    extra["prior"]["loss"]["new_term"] = 1.0
    assert compare("vq-vae", case, extra) == ["vq-vae, phase 'prior', loss(): term 'new_term' appeared (value 1.0, no golden value)"]
    no_phase = {k: v for k, v in case.items() if k != "prior"}
    assert compare("vq-vae", case, no_phase) == ["vq-vae: phase 'prior' disappeared (it has golden values)"]
    no_step = copy.deepcopy(case)
    del no_step["train"]["train_step"]
    assert compare("vq-vae", case, no_step) == ["vq-vae, phase 'train', train_step(): no longer computed (it has golden values)"]
    assert compare("new-variant", None, case) == ["new-variant: no golden values stored (a new variant?)"]
    assert "tests/golden/regenerate.py" in failure_message(["x"])
