"""Score a series of checkpoints (what ``eval_iter.sh`` runs)."""
import logging
import os

from connectomics.checkpoint import list_checkpoints
from connectomics.engine.infer import check_decoder, check_output_names, run_volume
from connectomics.engine.outputs import volume_folders
from connectomics.engine.runner import connect, make_runner
from connectomics.engine.scores import SCORES_CSV, score_settings, use_score_settings
from connectomics.evaluation.scores_csv import append_score, read_scores

logger = logging.getLogger(__name__)


def plot_scores(csv_path, png_path):
    """AP-75 and AP-50 over the training iteration."""
    from connectomics.utils.plots import plot_curve

    scores = read_scores(csv_path)
    its = sorted(scores)
    return plot_curve(its, {"AP-75": [scores[i]["AP75"] for i in its], "AP-50": [scores[i]["AP50"] for i in its]},
                      png_path, ylabel="average precision", title="AP over checkpoints")


def format_scores(scores):
    lines = [f"{'iteration':>10} {'AP-75':>8} {'AP-50':>8}"]
    lines += [f"{it:>10d} {s['AP75']:>8.4f} {s['AP50']:>8.4f}" for it, s in sorted(scores.items())]
    return "\n".join(lines)


def evaluate_checkpoints(cfg, folder, first=0, last=None, scheduler=None):
    """Inference + post-processing + AP-75 for every checkpoint in ``folder`` with
    ``first <= iteration <= last``, skipping iterations already in the CSV (unless that CSV
    was made with other settings: then it is moved aside, see :mod:`connectomics.engine.scores`).
    Probability maps already in a checkpoint's folder are reused when they were made by the same
    model with the same inference settings (a change of post-processing or evaluation keys only
    decodes and scores again); maps of other inference settings are replaced.
    Several volumes in INFERENCE.IMAGE_NAME: the first is scored (a warning says so). With a
    scheduler (``scheduler`` or SYSTEM.SCHEDULER) each checkpoint runs blockwise on Dask, as
    ``scripts/main.py --inference --scheduler`` does.

    Results: ``INFERENCE.OUTPUT_PATH/iter_XXXXXX/`` per checkpoint, one row each in
    ``INFERENCE.OUTPUT_PATH/sum_results_map75.csv`` and ``ap_over_iterations.png``.
    Returns ``{iteration: {'AP75', 'AP50'}}``.
    """
    from connectomics.blockwise.build import use_blockwise
    from connectomics.engine.train import select_device

    blockwise = use_blockwise(cfg, scheduler)
    check_decoder(cfg, blockwise)
    check_output_names(cfg, blockwise)
    found = [(it, p) for it, p in list_checkpoints(folder) if it >= first and (last is None or it <= last)]
    if not found:
        raise FileNotFoundError(f"no checkpoint_XXXXXX.pth.tar in {folder} between {first} and {last}")
    out = cfg.INFERENCE.OUTPUT_PATH
    csv_path = os.path.join(out, SCORES_CSV)
    volumes = volume_folders(cfg)
    image, gt, _ = volumes[0]
    if len(volumes) > 1:
        logger.warning("INFERENCE.IMAGE_NAME names %d volumes: eval_iter scores the first one only (%s)",
                       len(volumes), image)
    from connectomics.checkpoint import model_identity

    model = model_identity(found[-1][1])  # the run the checkpoints belong to
    use_score_settings(csv_path, score_settings(cfg, image, gt, model))  # other settings or run: CSV moved aside
    done = read_scores(csv_path)
    device = select_device(cfg)
    with connect(cfg, blockwise, scheduler) as client:
        for iteration, path in found:
            if iteration in done:
                logger.info("checkpoint %d already scored: skipped", iteration)
                continue
            runner = make_runner(cfg, path, device, blockwise, client)
            folder = os.path.join(out, f"iter_{iteration:06d}")
            # maps of the same model and inference settings are reused (e.g. after a threshold change);
            # maps and instances of other settings in a checkpoint's own folder are replaced
            summary = run_volume(cfg, runner, image, gt, folder, overwrite=True)
            append_score(csv_path, iteration, summary)
    scores = read_scores(csv_path)
    print(format_scores(scores), flush=True)
    png = plot_scores(csv_path, os.path.join(out, "ap_over_iterations.png"))
    logger.info("scores: %s, plot: %s", csv_path, png)
    return scores
