"""Sliding-window and chunk geometry of inference (pure Python / NumPy, no torch).

One axis of the volume, all coordinates in VOLUME coordinates (voxel 0 is the
first voxel of the volume; negative coordinates lie in the mirror padding)::

    padded:   |<- pb ->|<------------- L (volume) ------------->|<- pa ->|
              -pb      0                                        L        L+pa
    windows:  [===w===)                                   global grid, fixed by
                   [===w===)                              (L, w, s, p) alone:
                        [===w===)          ...            start_k = k*s - pb,
                                              [===w===)   last one snapped to
                                                [===w===) L + pa - w
    chunks:            |--- chunk 0 ---|--- chunk 1 ---|--- chunk 2 --|
                                       c0              c1
    chunk 1:               read box = [first start, last end) of the
                       [=====(=== windows touching [c0, c1) ===)=====]
                       <-halo->|<------ write box ----->|<-halo->

* Windows per axis: ``n = 1 + ceil((L + pb + pa - w) / s)``; ``start_k = k*s - pb``
  for ``k < n - 1`` and the last window snapped to the far border,
  ``start_{n-1} = L + pa - w``.  ``pb = pa = p`` (PAD_SIZE) unless the padded
  volume is shorter than the window: then the padding grows to fit exactly one
  window, the extra ``e = w - (L + 2p)`` split as ``pb = p + e // 2``,
  ``pa = p + e - e // 2`` (a warning is logged).  The window is never shrunk,
  so a network with size constraints (y, x divisible by 16) still works.
* A chunk (write box ``[c0, c1)`` per axis; borders every CHUNK_SIZE, each
  moved by at most stride / 2 to where the fewest windows straddle it, see
  ``chunk_borders``) runs every window of the global grid that touches its
  write box, in global (z, y, x) order.  Every voxel of the write box is thus
  covered by exactly the windows that cover it without chunking, blended in
  the same order: the result does not depend on the chunk size (given a model
  whose per-window output does not depend on the rest of its batch).  Windows
  that straddle a chunk border run once per chunk they touch, about
  ``(c + w - s) / c`` times the windows per axis for a chunk of ``c`` (the
  cost of chunking; it shrinks as chunks grow: 1.55x for 64x512x512 chunks with
  window 8x256x256 and stride 4x128x128, 1.24x for 64x1024x1024).  Windows
  lying wholly in the padding touch no chunk and never run.
* The read box (write box + halo) can leave the volume; its voxels outside
  ``[0, L)`` are mirrored in GLOBAL coordinates (``geometry.reflect_index``, NumPy's
  'reflect' mode: ``... 2 1 | 0 1 2 ... L-1 | L-2 ...``), which is identical to
  padding the whole volume first, whatever the chunk.
"""
import itertools
import logging
import math
from dataclasses import dataclass

from connectomics.geometry import Box
from connectomics.geometry import triple as _triple

logger = logging.getLogger(__name__)


def axis_padding(length, window, pad):
    """``(pad_before, pad_after)`` of one axis: ``pad`` each side, grown so one window fits."""
    extra = window - (length + 2 * pad)
    if extra <= 0:
        return pad, pad
    return pad + extra // 2, pad + extra - extra // 2


def window_starts(length, window, stride, pad):
    """Window start coordinates of one axis (volume coordinates, ascending, unique).

    ``length`` volume length, ``window`` w, ``stride`` s (1 <= s <= w), ``pad`` p.
    Returns a list of ints; see the module docstring for the rule.
    """
    _check_axis(length, window, stride, pad)
    before, after = axis_padding(length, window, pad)
    span = length + before + after - window
    n = 1 + math.ceil(span / stride)
    starts = [k * stride - before for k in range(n - 1)]
    starts.append(span - before)
    return starts


def check_window(window, stride, pad):
    """Raise ValueError unless window, stride (<= window) and pad are valid (z, y, x) triples."""
    for w, s, p in zip(_triple(window, "window"), _triple(stride, "stride"), _triple(pad, "pad", low=0)):
        _check_axis(1, w, s, p)


def _check_axis(length, window, stride, pad):
    for name, value, low in (("length", length, 1), ("window", window, 1), ("stride", stride, 1), ("pad", pad, 0)):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if stride > window:
        raise ValueError(f"stride {stride} is larger than the window {window}: voxels would be skipped")


@dataclass(frozen=True)
class Chunk:
    """One unit of chunked inference (boxes are :class:`~connectomics.geometry.Box`, volume coords).

    ``index``: position in the chunk grid; ``write``: output box inside the
    volume; ``read``: union of its windows (may leave the volume: mirrored);
    ``windows``: window start corners (z, y, x) in global (z, y, x) order.
    """

    index: tuple
    write: Box
    read: Box
    windows: tuple

    @property
    def write_shape(self):
        return self.write.shape

    @property
    def read_shape(self):
        return self.read.shape


def chunk_borders(length, chunk, starts, window, stride):
    """Chunk borders of one axis: ``[0, b_1, ..., length]``, strictly increasing.

    A window runs once per chunk it touches: ``1 + #{borders b : a < b < a + w}``
    times. So each inner border is placed, within ``stride // 2`` of its
    nominal position ``j * chunk``, where the fewest windows straddle it (ties:
    nearest the nominal, then lower). On a regular grid that is a window start:
    ``ceil(w / s) - 1`` straddling windows instead of about ``ceil(w / s)``.
    Never more windows run than with the nominal borders; chunks are
    ``chunk +- stride`` long.
    """
    borders = [0]
    for nominal in range(chunk, length, chunk):
        low, high = max(borders[-1] + 1, nominal - stride // 2), min(length - 1, nominal + stride // 2)
        candidates = range(low, high + 1)
        if candidates:
            borders.append(min(candidates, key=lambda b: (sum(1 for a in starts if b - window < a < b),
                                                          abs(b - nominal), b)))
    borders.append(length)
    return borders


class Tiling:
    """The global window grid of a volume and its partition into output chunks.

    ``volume_shape``, ``window``, ``stride``, ``pad``, ``chunk_size``: (z, y, x)
    integer triples. ``chunk_size`` None means one chunk for the whole volume;
    otherwise borders every ``chunk_size``, moved to save windows (:func:`chunk_borders`),
    or, with ``aligned=True``, exactly at the multiples of ``chunk_size`` (the grid of a
    zarr store that blocks write in parallel).
    """

    def __init__(self, volume_shape, window, stride, pad, chunk_size=None, aligned=False):
        self.volume_shape = _triple(volume_shape, "volume_shape")
        self.window = _triple(window, "window")
        self.stride = _triple(stride, "stride")
        self.pad = _triple(pad, "pad", low=0)
        self.chunk_size = self.volume_shape if chunk_size is None else tuple(
            min(c, n) for c, n in zip(_triple(chunk_size, "chunk_size"), self.volume_shape))
        self.starts = tuple(window_starts(n, w, s, p) for n, w, s, p in zip(
            self.volume_shape, self.window, self.stride, self.pad))
        self.padding = tuple(axis_padding(n, w, p) for n, w, p in zip(self.volume_shape, self.window, self.pad))
        grown = [(a, p) for a, p in zip("zyx", zip(self.padding, self.pad)) if p[0] != (p[1],) * 2]
        if grown:
            logger.warning("volume %s is smaller than the window %s plus padding; padding grown on axes %s to fit "
                           "one window", self.volume_shape, self.window, ", ".join(f"{a}: {p}" for a, p in grown))
        if aligned:
            self.borders = tuple(tuple(range(0, n, c)) + (n,) for n, c in zip(self.volume_shape, self.chunk_size))
        else:
            self.borders = tuple(tuple(chunk_borders(n, c, starts, w, s)) for n, c, starts, w, s in zip(
                self.volume_shape, self.chunk_size, self.starts, self.window, self.stride))
        self.grid_shape = tuple(len(b) - 1 for b in self.borders)

    @property
    def num_windows(self):
        """Windows of the global grid that touch the volume (each run once without chunking).

        Windows lying wholly in the padding (pad >= window) touch no output voxel and never run.
        """
        return math.prod(len(self._touching(starts, w, 0, n))
                         for n, w, starts in zip(self.volume_shape, self.window, self.starts))

    @property
    def num_chunks(self):
        return math.prod(self.grid_shape)

    @property
    def max_chunk_shape(self):
        """The largest write box per axis (bounds the accumulators)."""
        return tuple(max(b - a for a, b in zip(borders, borders[1:])) for borders in self.borders)

    def chunk_indices(self):
        """Chunk grid positions in (z, y, x) raster order."""
        return list(itertools.product(*(range(g) for g in self.grid_shape)))

    @staticmethod
    def _touching(starts, window, c0, c1):
        return [a for a in starts if a < c1 and a + window > c0]

    def chunk(self, index):
        """The :class:`Chunk` at grid position ``index`` (z, y, x)."""
        index = tuple(int(i) for i in index)
        if len(index) != 3 or any(not 0 <= i < g for i, g in zip(index, self.grid_shape)):
            raise IndexError(f"chunk index {index} outside the chunk grid {self.grid_shape}")
        write, read, axis_starts = [], [], []
        for i, borders, w, starts in zip(index, self.borders, self.window, self.starts):
            c0, c1 = borders[i], borders[i + 1]
            touching = self._touching(starts, w, c0, c1)
            write.append((c0, c1))
            read.append((touching[0], touching[-1] + w))
            axis_starts.append(touching)
        return Chunk(index, Box(write), Box(read), tuple(itertools.product(*axis_starts)))

    def chunks(self):
        """All chunks in raster order (a generator)."""
        return (self.chunk(i) for i in self.chunk_indices())

    def windows_computed(self):
        """Windows run over all chunks (>= num_windows: border windows run once per chunk)."""
        return math.prod(sum(len(self._touching(starts, w, c0, c1)) for c0, c1 in zip(borders, borders[1:]))
                         for borders, w, starts in zip(self.borders, self.window, self.starts))
