"""The errors that mean "fix your input": entry points print them in one line, without a traceback,
and exit 2 (``USER_ERRORS``). A leaf module: every layer raises them, none imports upward for them.
"""


class ConfigError(ValueError):
    """A config key or value a user must fix."""


class VolumeError(ValueError):
    """A volume file that cannot be used as asked (missing key, wrong shape or dtype)."""


class ResumeError(ValueError):
    """An output (or partial output) that exists from a run with other settings."""


class CheckpointMismatchError(RuntimeError):
    """The checkpoint's keys or shapes do not match the model's."""


class SchedulerError(RuntimeError):
    """The Dask scheduler cannot be reached, or went away during the run."""


class BlocksFailedError(RuntimeError):
    """Some blocks failed after their retries; the finished ones are kept for a rerun."""


USER_ERRORS = (ConfigError, VolumeError, ResumeError, CheckpointMismatchError, FileNotFoundError, SchedulerError,
               BlocksFailedError)
