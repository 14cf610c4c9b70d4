"""Errors that mean "fix your input": entry points print them without a traceback."""
from connectomics.blockwise.cluster import BlocksFailedError, SchedulerError
from connectomics.config import ConfigError
from connectomics.data.io import ResumeError, VolumeError
from connectomics.model.checkpoint import CheckpointMismatchError

USER_ERRORS = (ConfigError, VolumeError, ResumeError, CheckpointMismatchError, FileNotFoundError, SchedulerError,
               BlocksFailedError)
