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
    fig.savefig(path)
    plt.close(fig)
    return path
