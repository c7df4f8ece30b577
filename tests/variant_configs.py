"""Each variant's small test configuration and the battery's per-variant exceptions: test knobs, kept
in the tests and out of the models.

``config_for(name)``: the overrides a variant needs in the tests on top of the battery's small
backbone and 4-d latent (fewer pretraining epochs, small sequence frames, feature generators' 12-d
features and 6-d attributes).
"""
from __future__ import annotations

from typing import Any

#: The feature generators' test data: 12-d features, 10 distinct 6-d attribute vectors (the bits of c + 1);
#: transductive runs hold class 7–9's features unlabelled
FEATURES: dict[str, Any] = {"data_shape": (12,), "hidden": 16,
                            "attributes": [[float((c + 1) >> i & 1) for i in range(6)] for c in range(10)],
                            "transductive": True, "unseen": [7, 8, 9]}
SEQUENCES: dict[str, Any] = {"hidden": 32, "latent_dim": 8, "dynamic_dim": 2, "critic_hidden": 16, "data_shape": (4, 1, 28, 28)}

TEST_CONFIGS: dict[str, dict[str, Any]] = {
    "vade": {"pretrain_epochs": 1, "gmm_restarts": 1},
    "vq-vae": {"num_codes": 16, "prior_channels": 8, "prior_layers": 2},
    "cvae-quadrant": {"baseline_epochs": 1},
    "s3vae": SEQUENCES,
    "dsvae": SEQUENCES,
    "f-vaegan-d2": FEATURES,
    "f-clswgan": {**FEATURES, "transductive": False, "unseen": [], "classifier_epochs": 1},
    "zero-vae-gan": {**FEATURES, "transductive": False, "unseen": []},
    "factor-vae": {"disc_hidden": 16, "disc_layers": 2},
}

#: Parameters that may stay unchanged after one step of each phase, by variant (name prefixes):
#: cvae's prior network's output layer starts at zero, so its hidden layer gets no gradient on the first step
MAY_NOT_CHANGE: dict[str, tuple[str, ...]] = {"cvae": ("label_prior.0.",)}


def config_for(name: str) -> dict[str, Any]:
    """A copy of ``name``'s test overrides (empty for most variants)."""
    return dict(TEST_CONFIGS.get(name, {}))
