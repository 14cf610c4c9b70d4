"""The morphometrics summary PNG: histograms of volume, sphericity and skeleton length, with the
count and density of the instances (what a lab meeting slide shows)."""
import math

import numpy as np

from connectomics.storage import atomic_path


def _values(rows, prefix):
    key = next((k for k in (rows[0] if rows else {}) if k.startswith(prefix)), None)
    values = np.array([r[key] for r in rows if r.get(key) is not None], np.float64) if key else np.zeros(0)
    return values[np.isfinite(values)], key


def save_summary_png(rows, shape, voxel_size, path, title="instances"):
    """Write the summary figure of ``rows`` (:func:`~connectomics.measure.api.measure_instances`)
    of a volume of ``shape`` voxels at ``voxel_size`` (nm or None) to ``path`` (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(rows)
    if voxel_size:
        total = math.prod(shape) * math.prod(voxel_size) / 1e9
        density = f"{n / total:.3g} per um^3 ({total:.3g} um^3 imaged)"
    else:
        density = f"{n / math.prod(shape) * 1e9:.3g} per 10^9 voxels (voxel size unknown)"
    border = sum(int(r.get("touches_border") or 0) for r in rows)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, prefix, label in ((axes[0], "volume_", "volume"), (axes[1], "sphericity", "sphericity"),
                              (axes[2], "skeleton_", "skeleton length")):
        values, key = _values(rows, prefix)
        if len(values):
            ax.hist(values, bins=min(40, max(5, len(values) // 3)), color="#4a7fb5")
            ax.axvline(np.median(values), color="k", lw=1, ls="--")
            ax.set_title(f"{label}: median {np.median(values):.3g}")
        else:
            ax.text(0.5, 0.5, "no instances" if not n else "not measured", ha="center", va="center",
                    transform=ax.transAxes)
        unit = key.rsplit("_", 1)[-1] if key and "_" in key and key != "sphericity" else ""
        ax.set_xlabel(f"{label}{f' ({unit})' if unit else ''}")
        ax.set_ylabel("instances")
    fig.suptitle(f"{title}: {n} instances, {density}; {border} touch the border (lower bounds)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
