"""Batched sliding-window prediction of one chunk: forward, TTA merge, blending, uint8.

Per chunk (see ``tiling`` for the geometry), all on the predictor's device::

    read box (uint8, mirrored)  --windows, B at a time-->  (B, 1, w) float32 in [0, 1]
      --model (+ TTA variants, autocast on CUDA)-->  sigmoid  --merge-->  (B, C, w)
      --* blending weights, crop to the write box-->  += float32 accumulators (C + 1, chunk)
      --rint(255 * acc / weight)-->  (C, chunk) uint8  --one copy-->  host

Peak memory per chunk (a chunk is CHUNK_SIZE +- stride per axis): float32
accumulators ``4 (C + 1)`` bytes per write-box voxel, the uint8 result (``C``
bytes per voxel), the read box of the input (1 byte per read-box voxel for uint8
input; the read box is the write box plus about a window per axis), plus one
batch of windows, its TTA outputs and the model's activations (independent of
the chunk). On the CPU that is ``5 C + 4 + r`` bytes per chunk voxel (``r`` =
read-box / write-box volume, 1.2-2), i.e. about 16 bytes for C = 2; on CUDA the
accumulators live on the GPU and the host holds only the read box and the result.
The file writer (``writer.ChunkWriter``) adds up to two finished (C, chunk) uint8
blocks and the next chunk's read box, prefetched. Nothing scales with the volume.
"""
import contextlib
import functools
import logging
import math
import statistics
import time

import numpy as np
import torch

from connectomics.geometry import Box, read_box
from connectomics.inference.blending import blending_weights, finalize_uint8
from connectomics.inference.tiling import Tiling, check_window
from connectomics.inference.tta import AUG_MODES, predict_tta, tta_variants
from connectomics.storage import VolumeError
from connectomics.utils.precision import autocast, autocast_dtype, stage_mode

logger = logging.getLogger(__name__)

OUTPUT_ACTS = ("sigmoid", "none")


class Predictor:
    """Sliding-window predictor (plain arguments; ``build_predictor`` reads the config).

    ``model``: torch module, (B, 1, Z, Y, X) float32 in [0, 1] -> (B, C, Z, Y, X)
    logits (or probabilities with ``output_act='none'``). ``window``, ``stride``,
    ``pad``: (z, y, x) ints. ``blending``: 'gaussian' | 'bump'. ``aug_num``: 0, 4 or
    16 TTA variants merged by ``aug_mode`` ('mean' | 'min' | 'max').
    ``batch_size``: windows per forward (the last batch of a chunk is padded to it, so every
    forward has one shape and the maps do not depend on the chunking). ``amp``: float16 autocast (CUDA only).
    ``cpu_bf16``: bfloat16 autocast on the CPU: 'auto' (where the CPU has AMX-BF16 or AVX512-BF16),
    'on' or 'off' (see :mod:`connectomics.utils.precision`; the default here: off).
    ``channels_last``: run the model's 3D convolutions in the channels-last-3d layout (input and weights;
    the weights go back to their layout after each chunk, so a model being trained is left as it was).
    None = on the CPU (1.5x the float32 forward rate of the MitoEM model on 2 AVX2 cores, the values
    equal to ~1e-6 of a logit: rarely a uint8 level apart) and on CUDA with AMP.
    ``chunk_size``: default output chunk (z, y, x) or None (whole volume). ``eval_mode``: run the model
    in eval mode (the previous mode is restored after each chunk; False uses batch statistics and,
    as torch does in train mode, updates the running statistics). On CUDA it turns on
    cuDNN autotuning (``torch.backends.cudnn.benchmark``, process-wide): every forward
    has the window's shape.
    """

    def __init__(self, model, window, stride, pad, blending="gaussian", aug_num=0, aug_mode="mean",
                 batch_size=8, device="cpu", amp=True, output_act="sigmoid", chunk_size=None,
                 channels_last=None, eval_mode=True, cpu_bf16="off"):
        acts = [output_act] if isinstance(output_act, str) else list(output_act)
        if not acts or any(act not in OUTPUT_ACTS for act in acts):
            raise ValueError(f"output activation {output_act!r} not supported; valid: {', '.join(OUTPUT_ACTS)} "
                             "(one for all channels, or a list with one per channel)")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self.model = model
        self.device = torch.device(device)
        check_window(window, stride, pad)
        self.window, self.stride, self.pad = (tuple(int(v) for v in t) for t in (window, stride, pad))
        if aug_mode not in AUG_MODES:
            raise ValueError(f"test-time augmentation merge {aug_mode!r} not supported; valid: {', '.join(AUG_MODES)}")
        self.blending, self.aug_num, self.aug_mode = blending, int(aug_num), aug_mode
        self.variants = tta_variants(self.aug_num, self.window)
        self.batch_size = int(batch_size)
        self.amp = bool(amp) and self.device.type == "cuda"
        self.dtype = autocast_dtype(self.device.type, self.amp, cpu_bf16)
        self.channels_last = (self.amp or self.device.type == "cpu") if channels_last is None else bool(channels_last)
        self.output_act = acts[0] if len(set(acts)) == 1 else acts  # one name when all channels agree
        self.chunk_size = None if chunk_size is None else tuple(int(c) for c in chunk_size)
        self.eval_mode = bool(eval_mode)
        self.weights = torch.from_numpy(blending_weights(self.window, blending)).to(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    def tiling(self, volume_shape, chunk_size=None, aligned=False):
        """The :class:`Tiling` of a (Z, Y, X) volume; ``chunk_size`` None -> ``self.chunk_size``.

        ``aligned``: chunk borders at the multiples of the chunk size (see :class:`Tiling`).
        """
        return Tiling(volume_shape, self.window, self.stride, self.pad, chunk_size or self.chunk_size, aligned)

    def settings(self):
        """Everything that changes the output values (used to check resumed files)."""
        settings = {"window": list(self.window), "stride": list(self.stride), "pad": list(self.pad),
                    "blending": self.blending, "aug_num": self.aug_num, "aug_mode": self.aug_mode,
                    "output_act": self.output_act, "amp": self.amp}
        if self.dtype == torch.bfloat16:  # named only when on: float32 files keep their settings
            settings["autocast"] = "bfloat16, input convolution float32"
        if not self.eval_mode:  # batch statistics change every value (only named when off: older files match)
            settings["eval_mode"] = False
        return settings

    @contextlib.contextmanager
    def _model_mode(self, train=None):
        was_training = self.model.training
        self.model.train(not self.eval_mode if train is None else train)
        converted, wrapped = [], None
        if self.dtype == torch.bfloat16 and self.device.type == "cpu":
            wrapped = _input_convolution(self.model)
            if wrapped is not None:  # it sees the raw image: bfloat16 rounding there costs the most
                wrapped.forward = functools.partial(_float32_forward, wrapped.forward)
        if self.channels_last:  # 5D weights in the layout of the input: oneDNN / cuDNN run without reorders
            for param in self.model.parameters():
                if param.ndim == 5 and not param.is_contiguous(memory_format=torch.channels_last_3d):
                    converted.append((param, param.data))
                    param.data = param.data.contiguous(memory_format=torch.channels_last_3d)
        try:
            with torch.inference_mode():
                yield
        finally:
            self.model.train(was_training)
            for param, data in converted:  # as they were (a model in training keeps its layout)
                param.data = data
            if wrapped is not None:
                del wrapped.forward  # the class's forward again

    def time_batch(self, repeats=3):
        """Median seconds of one batch of windows run as :meth:`predict_chunk` runs it (weight layout,
        autocast, test-time augmentation), after a warm-up batch. The model runs in eval mode, so a model
        in training keeps its batch-norm statistics (and its layout and mode)."""
        x = torch.rand((self.batch_size, 1) + self.window, generator=torch.Generator().manual_seed(0))
        x = x.to(self.device)
        times = []
        with self._model_mode(train=False):
            for _ in range(int(repeats) + 1):
                began = time.perf_counter()
                predict_tta(self.forward, x, self.variants, self.aug_mode)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                times.append(time.perf_counter() - began)
        return statistics.median(times[1:])

    def forward(self, x):
        """(B, 1, Z, Y, X) float32 in [0, 1] on the device -> (B, C, Z, Y, X) float32 probabilities."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with autocast(self.device.type, self.dtype):
            y = self.model(x)
        if y.ndim != 5 or y.shape[0] != x.shape[0] or tuple(y.shape[2:]) != tuple(x.shape[2:]):
            raise ValueError(f"the model maps input {tuple(x.shape)} to {tuple(y.shape)}; inference needs "
                             "(B, C, Z, Y, X) with the input's B, Z, Y, X (a same-size network)")
        y = y.float()
        if self.output_act == "none":
            return y
        if y.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
            y = y.clone()  # a model that returns (a view of) its input: keep the input intact
        if self.output_act == "sigmoid":
            return y.sigmoid_()  # in place: half the time of torch.sigmoid on the CPU
        if len(self.output_act) != y.shape[1]:
            raise ValueError(f"{len(self.output_act)} output activations for a model with {y.shape[1]} channels")
        for channel, act in enumerate(self.output_act):
            if act == "sigmoid":
                y[:, channel].sigmoid_()
        return y

    def read_chunk(self, volume, chunk):
        """The chunk's read box of ``volume`` as NumPy (uint8, or float checked to lie in [0, 1])."""
        check_volume(volume)
        return _check_range(read_box(volume, chunk.read), chunk)

    def predict_chunk(self, volume, chunk, workspace=None, source=None):
        """Predict one :class:`~connectomics.inference.tiling.Chunk` of ``volume``.

        ``volume``: (Z, Y, X) array-like (uint8 0..255, or float in [0, 1]); only
        the chunk's read box is read. ``source``: that box already read by
        :meth:`read_chunk` (a caller that prefetches), or None to read it here.
        ``workspace``: a :class:`Workspace` to reuse the accumulators across chunks
        (then the result is a view into it, valid until the next call). Returns
        (C, *chunk.write_shape) uint8 NumPy.
        """
        if source is None:
            source = self.read_chunk(volume, chunk)
        workspace = workspace or Workspace(self.device)
        source = _to_device_volume(source, self.device)
        acc = weight = None
        with self._model_mode():
            for first in range(0, len(chunk.windows), self.batch_size):
                starts = chunk.windows[first:first + self.batch_size]
                x = torch.stack([source[Box.at(s, self.window).slices(chunk.read)] for s in starts])[:, None]
                x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
                if self.eval_mode:  # in train mode zero windows would enter the batch statistics
                    x = _full_batch(x, self.batch_size)
                probs = predict_tta(self.forward, x, self.variants, self.aug_mode)
                probs = probs[:len(starts)].mul_(self.weights)
                if acc is None:
                    acc = workspace.zeros("acc", (probs.shape[1],) + chunk.write_shape, torch.float32)
                    weight = workspace.zeros("weight", chunk.write_shape, torch.float32)
                for k, start in enumerate(starts):
                    part = Box.at(start, self.window).intersect(chunk.write)
                    dst, src = part.slices(chunk.write), part.slices(start)
                    acc[(slice(None),) + dst].add_(probs[(k, slice(None)) + src])
                    weight[dst].add_(self.weights[src])
            out = finalize_uint8(acc, weight, workspace.empty("out", acc.shape, torch.uint8))
            return out.cpu().numpy()


class Workspace:
    """Flat buffers reused from chunk to chunk, sized once for the largest chunk.

    ``max_shape``: the largest (z, y, x) write box (``Tiling.max_chunk_shape``);
    chunks differ in shape by up to a stride. Keeps memory flat and avoids
    re-faulting fresh pages for every chunk; drop it to free the memory.
    """

    def __init__(self, device, max_shape=None):
        self.device, self.buffers = torch.device(device), {}
        self.max_voxels = math.prod(max_shape) if max_shape is not None else 0

    def empty(self, name, shape, dtype):
        """An uninitialised ``shape`` tensor (trailing three dims: a write box) viewing buffer ``name``."""
        n = math.prod(shape)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.numel() < n or buffer.dtype != dtype:
            capacity = max(n, n // max(1, math.prod(shape[-3:])) * self.max_voxels)
            self.buffers[name] = None  # free the old buffer first
            buffer = self.buffers[name] = torch.empty(capacity, dtype=dtype, device=self.device)
        return buffer[:n].view(shape)

    def zeros(self, name, shape, dtype):
        return self.empty(name, shape, dtype).zero_()


def _full_batch(x, batch_size):
    """``x`` (B, ...) padded with zero windows to ``batch_size``.

    Every forward then has the same shape, so the same kernels run for every window
    and a window's prediction does not depend on how many windows its chunk has (CPU
    libraries pick other algorithms, with other rounding, for other batch sizes: blockwise
    and single-process maps differed by one uint8 level at a voxel on an AVX-512 CPU).
    """
    if x.shape[0] == batch_size:
        return x
    return torch.cat([x, x.new_zeros((batch_size - x.shape[0],) + tuple(x.shape[1:]))])


def check_volume(volume, name="volume"):
    """Raise VolumeError (a ValueError) unless ``volume`` is a non-empty (Z, Y, X) uint8 or float array-like."""
    shape, dtype = tuple(getattr(volume, "shape", ())), np.dtype(getattr(volume, "dtype", np.float64))
    if len(shape) != 3 or min(shape) < 1:
        raise VolumeError(f"{name}: inference needs a non-empty (Z, Y, X) volume, got shape {shape}")
    if dtype != np.uint8 and not np.issubdtype(dtype, np.floating):
        raise VolumeError(f"{name}: inference input must be uint8 (0..255) or float (0..1), got dtype {dtype}; "
                         "convert the volume first")


def predict_volume(predictor, volume, chunk_size=None):
    """Predict a whole (Z, Y, X) volume in memory -> (C, Z, Y, X) uint8 0..255.

    ``volume``: uint8 (or float in [0, 1]) array-like. Runs the same chunked code
    path as :func:`~connectomics.inference.writer.infer_volume_to_file`
    (``chunk_size`` None -> the predictor's, or the whole volume if that is None
    too), so memory is the uint8 result plus one chunk's working set.
    """
    check_volume(volume)
    tiling = predictor.tiling(volume.shape, chunk_size)
    workspace = Workspace(predictor.device, tiling.max_chunk_shape)
    out = None
    for chunk in tiling.chunks():
        block = predictor.predict_chunk(volume, chunk, workspace)
        if out is None:
            out = np.empty((block.shape[0],) + tiling.volume_shape, dtype=np.uint8)
        out[(slice(None),) + tuple(slice(a, b) for a, b in chunk.write)] = block
    return out


def output_activations(cfg):
    """Per output channel, the activation inference applies: MODEL.OUTPUT_ACT none -> 'none' for all;
    sigmoid -> each target's own (``Target.activation`` of the target table, in MODEL.TARGET_OPT order)."""
    from connectomics.data.targets import target_of

    if cfg.MODEL.OUTPUT_ACT == "none":
        return ["none"] * cfg.MODEL.OUT_PLANES
    return [target.activation for target in (target_of(code)[0] for code in cfg.MODEL.TARGET_OPT)
            for _ in range(target.channels)]


def _input_convolution(model):
    """The model's first 3D convolution (the one that reads the image), or None."""
    return next((m for m in model.modules() if isinstance(m, torch.nn.Conv3d)), None)


def _float32_forward(forward, x):
    """``forward(x)`` in float32 inside a bfloat16 autocast region.

    With only the input convolution in float32, the maps of the synthetic main job's model lie within
    2 uint8 levels of float32's on 99.993% of voxels (99.39% with it in bfloat16, at most 8 apart); it
    has one input channel, so it is a small share of the forward's work."""
    with torch.autocast(x.device.type, enabled=False):
        return forward(x.float())


def build_predictor(cfg, model, device="cpu"):
    """A :class:`Predictor` from ``cfg.INFERENCE`` and the output activations (:func:`output_activations`)
    (moves ``model`` to ``device``)."""
    inf = cfg.INFERENCE
    model = model.to(device)
    return Predictor(model, window=inf.INPUT_SIZE, stride=inf.STRIDE, pad=inf.PAD_SIZE, blending=inf.BLENDING,
                     aug_num=inf.AUG_NUM, aug_mode=inf.AUG_MODE, batch_size=inf.SAMPLES_PER_BATCH, device=device,
                     amp=inf.AMP, output_act=output_activations(cfg), chunk_size=inf.CHUNK_SIZE,
                     eval_mode=inf.DO_EVAL, cpu_bf16=stage_mode(cfg.SYSTEM.CPU_BF16, "inference"))


def _check_range(block, chunk):
    """``block`` (a chunk's read box) unchanged; VolumeError if it is float with values outside [0, 1].

    A float image stored as 0..255 would otherwise be fed to the model unscaled: maps of garbage.
    """
    if block.dtype != np.uint8 and block.size:
        lo, hi = float(block.min()), float(block.max())
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0.0 or hi > 1.0:
            raise VolumeError(f"float inference input must lie in [0, 1], found values in [{lo:g}, {hi:g}] "
                              f"in the box {chunk.read} (z, y, x) of the volume; store the image as uint8 "
                              "(0..255) or divide it by its maximum")
    return block


def _to_device_volume(block, device):
    """The read box as a tensor on ``device`` (uint8 kept as uint8, the smallest copy; floats as float32)."""
    dtype = np.uint8 if block.dtype == np.uint8 else np.float32
    return torch.from_numpy(np.ascontiguousarray(block, dtype=dtype)).to(device)
