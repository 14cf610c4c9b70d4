"""Errors that mean "fix your input": entry points print them without a traceback."""
from connectomics.config import ConfigError
from connectomics.data.io import VolumeError
from connectomics.inference.writer import ResumeError
from connectomics.model.checkpoint import CheckpointMismatchError

USER_ERRORS = (ConfigError, VolumeError, ResumeError, CheckpointMismatchError, FileNotFoundError)
