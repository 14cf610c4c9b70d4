"""Small matplotlib helpers (Agg backend: no display needed)."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curve(x, series, path, xlabel="iteration", ylabel="", title=None):
    """Line plot of ``series`` ({name: values}) over ``x``, written to ``path`` (PNG)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, values in series.items():
        ax.plot(x, values, marker="o" if len(x) < 30 else None, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def save_figure(fig, path, **kwargs):
    """``fig.savefig`` under the temporary name of :func:`connectomics.storage.atomic_path`, then
    renamed to ``path``: a killed run never leaves a truncated image under the final name. The
    format follows the extension of ``path`` (PNG if it has none)."""
    from connectomics.storage import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=os.path.splitext(path)[1][1:].lower() or "png", **kwargs)
    return path
