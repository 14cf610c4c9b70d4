"""Blockwise inference and post-processing on Dask, with zarr stores and global instance ids."""
from connectomics.blockwise.cluster import BlocksFailedError, SchedulerError, connect, run_blocks
from connectomics.blockwise.inference import infer_blockwise
from connectomics.blockwise.postprocess import postprocess_blockwise
from connectomics.errors import ResumeError

__all__ = ["BlocksFailedError", "ResumeError", "SchedulerError", "connect", "infer_blockwise",
           "postprocess_blockwise", "run_blocks"]
