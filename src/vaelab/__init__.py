"""vaelab: train, evaluate and compare Variational Autoencoder variants on one common footing.

>>> import vaelab
>>> vaelab.variants()            # registered names
>>> m = vaelab.build("vae", latent_dim=16, backbone="small")
>>> run = vaelab.train("vae", {"backbone": "small"}, vaelab.TrainConfig(dataset="mnist-5k", epochs=2), "runs/demo")
>>> model = vaelab.load(run)
>>> vaelab.evaluate_run(run)     # every metric; writes RUN/eval.json
"""
from ._version import __version__  # noqa: E402

from .errors import ConfigError, DataError, RunDirError, TrainingDiverged, VaelabError  # noqa: E402
from .registry import build, register, variants  # noqa: E402


def __getattr__(name):  # lazy: keep `import vaelab` light
    if name in ("train", "load", "run_config", "evaluate_run"):
        from . import rundir  # local: torch; keeps `import vaelab` (and `vaelab --help`) light

        return getattr(rundir, name)
    if name == "TrainConfig":
        from .training.config import TrainConfig  # local: torch; keeps `import vaelab` (and `vaelab --help`) light

        return TrainConfig
    if name in ("load_dataset",):
        from . import data  # local: torch; keeps `import vaelab` (and `vaelab --help`) light

        return getattr(data, name)
    if name in ("data", "metrics"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(name)


__all__ = ["build", "register", "variants", "train", "load", "evaluate_run", "TrainConfig", "load_dataset", "run_config",
           "VaelabError", "ConfigError", "DataError", "RunDirError", "TrainingDiverged"]
