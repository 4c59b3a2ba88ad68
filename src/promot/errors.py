"""User-facing errors: one clear line each; the CLI prints it and exits 2 (no traceback unless --debug)."""
from __future__ import annotations


class PromotError(Exception):
    """Base class for every error a user can fix (bad config, data, checkpoint, model)."""


class ConfigError(PromotError):
    """A config key, value or override is wrong."""


class DataError(PromotError):
    """A data file is unreadable, malformed, empty, or a record does not fit the limits."""


class CheckpointError(PromotError):
    """A run directory, prompt or model checkpoint is missing, corrupt or does not match its model."""


class ModelError(PromotError):
    """A model cannot be found or loaded."""


class TrainingError(PromotError):
    """Training diverged (NaN/inf loss): stopped, with what was written so far kept."""


class RunLockedError(PromotError):
    """Another live process is writing the run directory (train, resume, eval, compare hold its lock)."""


class Interrupted(PromotError):
    """SIGTERM/SIGINT: the current optimizer step finished and a checkpoint was written; resume with --resume.
    `exit_code` is the shell's 128 + signal number."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class DiskFullError(PromotError):
    """The disk filled up while promot wrote a file: nothing half-written was left in place (every artifact is
    written beside its target and renamed), the last checkpoint stands. Exit code 1: not bad input."""

    exit_code = 1

    def __init__(self, message: str, target: str = "", needs: int = 0) -> None:
        super().__init__(message)
        self.target, self.needs = target, needs
