"""Threshold search for a decoder: a grid over two main thresholds, then one-at-a-time refinement.

The search is generic over ``score_fn(labels) -> float`` (higher is better);
``scripts/tune_postprocess.py`` passes AP-75 from ``connectomics.evaluation``.
At most ``max_evals`` decodes run: the grid is thinned evenly to fit.

1. the given parameters (the "defaults") are scored;
2. a grid over the decoder's two main thresholds (its table entry's ``axes``: seed x contour;
   seed x foreground for ``binary_watershed``), the heat map;
3. every other tunable keyword (foreground, merge) tried one at a time
   from the best point so far, keeping what improves the score.

The keywords searched and their default grids come from the decoder table
(``POSTPROCESS.TUNE.<KEYWORD>S`` replaces a grid when set).
"""
import dataclasses
import logging
import math

import numpy as np
from tqdm import tqdm

from connectomics.postprocess.build import config_key
from connectomics.postprocess.maps import check_maps
from connectomics.postprocess.registry import decoder_entry, decoder_keywords, get_decoder

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TuneResult:
    """Outcome of a search: best parameters and score, the defaults' score, the heat map grid."""

    decoder: str
    best_params: dict
    best_score: float
    default_params: dict
    default_score: float
    axes: tuple  # ((name, values), (name, values)) of the heat map
    grid: np.ndarray  # scores, shape (len(values 0), len(values 1)); NaN where not evaluated
    trials: list  # [(params, score)] in evaluation order


def main_axes(decoder):
    """The two keywords of the heat map for ``decoder`` (its table entry's ``axes``)."""
    return tuple(decoder_entry(decoder).axes)


def tunable(decoder):
    """``{keyword: default grid}`` of the keywords tuning searches for ``decoder``."""
    return dict(decoder_entry(decoder).grids)


def thin(values, count):
    """``count`` values spread evenly over ``values`` (ends kept)."""
    values = list(values)
    if count >= len(values):
        return values
    if count <= 1:
        return [values[len(values) // 2]]
    picks = np.linspace(0, len(values) - 1, count).round().astype(int)
    return [values[i] for i in sorted(set(picks.tolist()))]


def plan_grid(x_values, y_values, budget):
    """Thin two axes so that their product fits ``budget`` (at least 1 x 1)."""
    nx, ny = len(x_values), len(y_values)
    if nx * ny <= budget:
        return list(x_values), list(y_values)
    scale = math.sqrt(max(budget, 1) / (nx * ny))
    return thin(x_values, max(1, int(nx * scale))), thin(y_values, max(1, int(ny * scale)))


class _Scorer:
    """Decode + score with a cache keyed by the parameters, counting real evaluations."""

    def __init__(self, decode, decoder, score_fn, max_evals, progress):
        self.decode, self.score_fn = decode, score_fn
        self.max_evals, self.cache, self.trials = max_evals, {}, []
        self.bar = tqdm(total=max_evals, desc=f"tuning {decoder}", disable=None if progress else True)

    def __call__(self, params):
        key = tuple(sorted(params.items()))
        if key not in self.cache:
            if len(self.trials) >= self.max_evals:
                return None
            score = float(self.score_fn(self.decode(params)))
            self.cache[key] = score
            self.trials.append((dict(params), score))
            self.bar.update(1)
            logger.debug("%s -> %.4f", params, score)
        return self.cache[key]


def tune_decoder(probs, score_fn, decoder="bc_watershed", params=None, grids=None, max_evals=80, progress=True,
                 decode=None):
    """Search the thresholds of ``decoder`` that maximise ``score_fn(decode(probs, **p))``.

    probs: (C, Z, Y, X) maps (uint8 or float in [0, 1]), or None with ``decode``: a callable
    ``decode(params) -> labels`` (e.g. blockwise into a store; ``score_fn`` gets what it returns)
    that replaces the in-memory decode of ``probs``; params: the starting
    (default) keyword arguments of the decoder; grids: ``{keyword: [values]}``
    for the decoder's tunable keywords (:func:`tunable`; missing ones are not searched).
    Returns a :class:`TuneResult`.
    """
    accepted, searched = decoder_keywords(decoder), tunable(decoder)
    params = {k: v for k, v in (params or {}).items() if k in accepted}
    grids = {k: list(v) for k, v in (grids or {}).items() if k in accepted and k in searched and len(v)}
    if max_evals < 1:
        raise ValueError(f"max_evals = {max_evals}: at least one decode is needed")
    if decode is None:
        maps = check_maps(probs, channels=2 if decoder_entry(decoder).channels == 2 else None)
        function = get_decoder(decoder)

        def decode(p):
            return function(maps, **p)

    scorer = _Scorer(decode, decoder, score_fn, max_evals, progress)
    default_score = scorer(params)
    best, best_score = dict(params), default_score

    (xname, xs), (yname, ys) = [(name, grids.get(name, [])) for name in main_axes(decoder)]
    others = [name for name in grids if name not in (xname, yname)]
    budget = max_evals - 1 - sum(len(grids[name]) for name in others)
    xs, ys = plan_grid(xs or [params.get(xname)], ys or [params.get(yname)], max(budget, 1))
    grid = np.full((len(xs), len(ys)), np.nan)
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            score = scorer({**best, xname: x, yname: y}) if x is not None and y is not None else None
            if score is not None:
                grid[i, j] = score
    if np.isfinite(grid).any():
        i, j = np.unravel_index(np.nanargmax(grid), grid.shape)
        if grid[i, j] > best_score:
            best, best_score = {**best, xname: xs[i], yname: ys[j]}, float(grid[i, j])
    for name in others:
        for value in grids[name]:
            score = scorer({**best, name: value})
            if score is not None and score > best_score:
                best, best_score = {**best, name: value}, score
    scorer.bar.close()
    return TuneResult(decoder, best, best_score, params, default_score, ((xname, xs), (yname, ys)), grid,
                      scorer.trials)


def best_yaml(result):
    """A YAML snippet (``POSTPROCESS: {...}``) with the decoder and its best thresholds."""
    lines = ["POSTPROCESS:", f"  DECODER: {result.decoder}"]
    for name in tunable(result.decoder):
        if name in result.best_params:
            lines.append(f"  {config_key(name)}: {float(result.best_params[name]):g}")
    return "\n".join(lines) + "\n"


def save_heatmap(result, path, score_name="AP-75"):
    """PNG heat map of the score over the two main thresholds; the best cell is outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from connectomics.utils.plots import save_figure

    (xname, xs), (yname, ys) = result.axes
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(ys), 1.0 + 0.6 * len(xs)))
    image = ax.imshow(result.grid, cmap="viridis", origin="lower", aspect="auto")
    for i in range(len(xs)):
        for j in range(len(ys)):
            if np.isfinite(result.grid[i, j]):
                ax.text(j, i, f"{result.grid[i, j]:.3f}", ha="center", va="center", fontsize=7, color="w")
    if np.isfinite(result.grid).any():
        i, j = np.unravel_index(np.nanargmax(result.grid), result.grid.shape)
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    ax.set_xticks(range(len(ys)), [f"{v:g}" for v in ys])
    ax.set_yticks(range(len(xs)), [f"{v:g}" for v in xs])
    ax.set_xlabel(yname)
    ax.set_ylabel(xname)
    ax.set_title(f"{result.decoder}: {score_name}")
    fig.colorbar(image, ax=ax, label=score_name)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def format_report(result, score_name="AP-75"):
    """Best vs default settings and scores, as a small text table."""
    names = [n for n in tunable(result.decoder) if n in result.best_params or n in result.default_params]
    lines = [f"decoder {result.decoder}: {len(result.trials)} decodes",
             f"{'':22s}{'default':>10s}{'best':>10s}"]
    for name in names:
        lines.append(f"{name:22s}{result.default_params.get(name, float('nan')):>10g}"
                     f"{result.best_params.get(name, float('nan')):>10g}")
    lines.append(f"{score_name:22s}{result.default_score:>10.4f}{result.best_score:>10.4f}")
    return "\n".join(lines)
