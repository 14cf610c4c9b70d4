"""Blockwise inference and post-processing on Dask, with zarr stores and global instance ids."""
from connectomics.blockwise.blocks import BlockGrid
from connectomics.blockwise.cluster import BlocksFailedError, SchedulerError, connect, run_blocks
from connectomics.blockwise.inference import infer_blockwise
from connectomics.blockwise.postprocess import postprocess_blockwise
from connectomics.blockwise.store import ResumeError

__all__ = ["BlockGrid", "BlocksFailedError", "ResumeError", "SchedulerError", "connect", "infer_blockwise",
           "postprocess_blockwise", "run_blocks"]
