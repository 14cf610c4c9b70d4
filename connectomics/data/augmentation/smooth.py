"""Label edge smoothing after augmentation: an in-plane majority (mode) filter.

The predecessor smoothed each id of each slice separately (dilation, Gaussian,
dilation, threshold; twice), which costs O(ids x slices) filter passes. A
majority filter has the same purpose (remove the staircase and one-pixel spurs
that nearest-neighbour resampling leaves) for a cost independent of the number
of ids: only voxels whose window is not uniform can change, and only those are
visited. Every output id comes from the input window, so ids are preserved
(tiny instances may disappear); background competes like any id, so instances
neither grow nor shrink on average.
"""
import numpy as np


def _row_mode(values, current):
    """Most frequent value per row of ``values`` (n, k); ties keep ``current`` if tied."""
    order = np.sort(values, axis=1)
    n, k = order.shape
    cols = np.broadcast_to(np.arange(k), (n, k))
    new_run = np.ones((n, k), bool)
    new_run[:, 1:] = order[:, 1:] != order[:, :-1]
    start = np.maximum.accumulate(np.where(new_run, cols, 0), axis=1)
    run_end = np.ones((n, k), bool)
    run_end[:, :-1] = new_run[:, 1:]
    end = np.minimum.accumulate(np.where(run_end, cols, k - 1)[:, ::-1], axis=1)[:, ::-1]
    count = end - start + 1
    best = count.max(axis=1)
    mode = order[np.arange(n), count.argmax(axis=1)]
    current_count = ((values == current[:, None]).sum(axis=1))
    return np.where(current_count == best, current, mode)


def _differs_from_4_neighbour(label):
    """bool (Z, Y, X): the voxel differs from one of its in-plane 4-neighbours."""
    edge = np.zeros(label.shape, bool)
    dy = label[:, 1:] != label[:, :-1]
    edge[:, 1:] |= dy
    edge[:, :-1] |= dy
    dx = label[:, :, 1:] != label[:, :, :-1]
    edge[:, :, 1:] |= dx
    edge[:, :, :-1] |= dx
    return edge


def smooth_label_edges(label, iterations=1):
    """In-plane 3x3 majority filter of an instance label, visiting border voxels only.

    label: integer (Z, Y, X) -> new array, same shape and dtype. The window is
    clipped at the slice border (edge values repeated). A voxel equal to all
    four in-plane neighbours holds at least 5 of 9 votes, so only voxels that
    differ from a 4-neighbour can change; a tie keeps the voxel's own id.
    """
    out = np.array(label, copy=True)
    z, h, w = out.shape
    offsets = [dy * (w + 2) + dx for dy in range(3) for dx in range(3)]
    for _ in range(iterations):
        flat = np.flatnonzero(_differs_from_4_neighbour(out))
        if flat.size == 0:
            break
        zs, rest = np.divmod(flat, h * w)
        ys, xs = np.divmod(rest, w)
        padded = np.pad(out, ((0, 0), (1, 1), (1, 1)), mode="edge").ravel()
        corner = zs * ((h + 2) * (w + 2)) + ys * (w + 2) + xs  # window's top-left in padded
        votes = np.stack([padded[corner + o] for o in offsets], axis=1)
        # a voxel holding 5 of 9 votes keeps its id: only corners and spurs need the full mode
        contested = (votes == votes[:, 4:5]).sum(axis=1) < 5
        votes = votes[contested]
        out.ravel()[flat[contested]] = _row_mode(votes, votes[:, 4])
    return out
