"""Inference stage: chunked sliding-window prediction into resumable uint8 HDF5 maps.

``tiling`` (pure geometry: window grid, chunks, read boxes) -> ``predictor``
(batched forward, test-time augmentation (``tta``), float32 blending
(``blending``)) -> ``writer`` (chunked, resumable, atomic HDF5).
"""
from connectomics.errors import ResumeError
from connectomics.inference.predictor import Predictor, build_predictor, predict_volume
from connectomics.inference.tiling import Chunk, Tiling
from connectomics.inference.writer import infer_volume_to_file

__all__ = ["Chunk", "Predictor", "ResumeError", "Tiling", "build_predictor", "infer_volume_to_file",
           "predict_volume"]
