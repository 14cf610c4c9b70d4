"""PNG previews of volumes: grey z slices beside the same slices with label or probability overlays.

Uses matplotlib's object API with the Agg canvas, so no display is needed and
the process-wide pyplot backend is left alone.
"""
import os

import numpy as np

from connectomics.storage import atomic_path

PANEL_INCHES = 2.6


def pick_slices(depth, slices=None):
    """z indices to show: None -> up to 4 evenly spaced, an int -> that many, a sequence -> itself."""
    if slices is None or np.isscalar(slices):
        count = min(depth, 4 if slices is None else max(1, int(slices)))
        if count >= depth:
            return list(range(depth))
        return [int(z) for z in np.linspace(0, depth - 1, count + 2).round()[1:-1]]
    chosen = [int(z) for z in slices]
    bad = [z for z in chosen if not 0 <= z < depth]
    if bad:
        raise ValueError(f"slices {bad} lie outside the volume's {depth} z slices")
    return chosen


def label_colors(label_slice, alpha=0.45):
    """RGBA float (Y, X, 4) of a 2D integer label slice: one stable colour per id, outlines opaque.

    0 stays transparent; the colour of an id depends only on the id (golden-ratio hues).
    """
    from matplotlib.colors import hsv_to_rgb

    ids, inverse = np.unique(label_slice, return_inverse=True)
    inverse = inverse.reshape(label_slice.shape)
    hue = (ids.astype(np.float64) * 0.618033988749895) % 1.0
    sat = 0.65 + 0.35 * ((ids.astype(np.float64) * 0.381966) % 1.0)
    rgb = hsv_to_rgb(np.stack([hue, sat, np.ones_like(hue)], axis=1))
    rgba = np.concatenate([rgb[inverse], np.full(label_slice.shape + (1,), alpha)], axis=2)
    edge = np.zeros(label_slice.shape, bool)
    edge[:-1] |= label_slice[:-1] != label_slice[1:]
    edge[1:] |= label_slice[:-1] != label_slice[1:]
    edge[:, :-1] |= label_slice[:, :-1] != label_slice[:, 1:]
    edge[:, 1:] |= label_slice[:, :-1] != label_slice[:, 1:]
    rgba[edge & (label_slice > 0), 3] = 0.95
    rgba[label_slice == 0, 3] = 0.0
    return rgba


def heat_colors(values, alpha=0.6):
    """RGBA float (Y, X, 4) of a 2D map in [0, 1]: magma colours, opacity growing with the value."""
    from matplotlib import colormaps

    values = np.clip(np.asarray(values, np.float32), 0.0, 1.0)
    rgba = colormaps["magma"](values)
    rgba[..., 3] = alpha * values
    return rgba


def _as_list(labels):
    if labels is None:
        return []
    if isinstance(labels, (list, tuple)):
        return [np.asarray(v) for v in labels]
    return [np.asarray(labels)]


def save_overlay_png(image, labels, path, titles=None, slices=None, alpha=0.45, z_offsets=None):
    """Write a PNG grid: one row per z slice, columns = the image, then one overlay per volume.

    Args:
        image: (Z, Y, X) or (Y, X) grey volume; uint8 shown as 0..255, other dtypes min..max.
        labels: one (Z, Y, X) volume or a list of them (same shape as ``image``). Integer
            volumes are instance labels (coloured ids, outlined); float volumes are
            probability maps in [0, 1] (heat overlay).
        path: the PNG to write (folders are created; written atomically).
        titles: column titles, ``1 + len(labels)`` of them (default "image", "overlay 1", ...).
        slices: None (up to 4 evenly spaced), a count, or a list of z indices.
        z_offsets: optional z index in the source volume of each slice, for the row labels
            (when ``image`` holds slices already picked out of a larger volume).
    Returns the path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    image = np.asarray(image)
    image = image[None] if image.ndim == 2 else image
    overlays = [v[None] if v.ndim == 2 else v for v in _as_list(labels)]
    for k, volume in enumerate(overlays):
        if volume.shape != image.shape:
            raise ValueError(f"overlay {k} has shape {volume.shape}, the image {image.shape}; they must match")
    titles = list(titles) if titles else ["image"] + [f"overlay {k + 1}" for k in range(len(overlays))]
    if len(titles) != 1 + len(overlays):
        raise ValueError(f"need {1 + len(overlays)} titles (image + overlays), got {len(titles)}")
    zs = pick_slices(image.shape[0], slices)
    vmin, vmax = (0, 255) if image.dtype == np.uint8 else (float(image.min()), float(image.max()) or 1.0)
    cols = 1 + len(overlays)
    aspect = image.shape[1] / max(1, image.shape[2])
    fig = Figure(figsize=(PANEL_INCHES * cols, PANEL_INCHES * aspect * len(zs) + 0.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(zs), cols, squeeze=False)
    for row, z in enumerate(zs):
        for col in range(cols):
            ax = axes[row, col]
            ax.imshow(image[z], cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
            if col:
                volume = overlays[col - 1][z]
                colors = (heat_colors(volume, alpha + 0.15) if volume.dtype.kind == "f"
                          else label_colors(volume, alpha))
                ax.imshow(colors, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=9)
            if col == 0:
                ax.set_ylabel(f"z = {z if z_offsets is None else z_offsets[z]}", fontsize=8)
    fig.tight_layout(pad=0.3)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def save_preview_png(image, label, path, slices=4):
    """PNG of ``slices`` z slices of a synthetic pair: the grey image beside the coloured labels."""
    return save_overlay_png(image, [label], path, titles=["image", f"labels ({int(label.max())} ids)"],
                            slices=slices)
