"""User-facing errors. The CLI prints these as one line and exits with code 2."""


class VaelabError(Exception):
    """Base class for errors caused by bad input (a file, an option, a config value)."""


class ConfigError(VaelabError, ValueError):
    """An unknown or invalid option, config key or variant name."""


class DataError(VaelabError):
    """A dataset file is missing, corrupt or inconsistent."""


class RunDirError(VaelabError):
    """A run directory is missing, locked by another process, or incomplete."""


class WriteFailed(RuntimeError):
    """A file could not be written (a full disk, a file-size limit, a read-only directory): the CLI
    prints one line naming the file and exits with code 1; what was written before is intact."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""
