"""The config door of the threshold search (``scripts/tune_postprocess.py``): ``cfg.POSTPROCESS`` and
its TUNE grids, ``cfg.EVAL`` for the AP-75 score; in memory, or blockwise on Dask with a scheduler
(each trial decoded into a zarr store and scored from it, so maps larger than memory can be tuned)."""
import contextlib
import os

from connectomics.postprocess.build import config_key, decoder_params
from connectomics.postprocess.tuning import best_yaml, format_report, save_heatmap, tunable, tune_decoder


def tuning_grids(cfg, decoder):
    """``{keyword: values}``: POSTPROCESS.TUNE.<KEYWORD>S where set, else the decoder's own grid."""
    tune = cfg.POSTPROCESS.TUNE
    return {k: list(tune.get(config_key(k) + "S") or grid) for k, grid in tunable(decoder).items()}


def _check_shapes(input_spec, gt_spec):
    from connectomics.storage import open_volume

    with open_volume(input_spec) as maps, open_volume(gt_spec) as gt:
        maps_shape, gt_shape = tuple(maps.shape), tuple(gt.shape)
    if gt_shape != maps_shape[1:]:
        raise ValueError(f"ground truth {gt_spec} has shape {gt_shape}, the maps {input_spec} {maps_shape}: "
                         "expected (Z, Y, X) equal to the maps' (C, Z, Y, X) without C")


@contextlib.contextmanager
def _blockwise_decode(cfg, input_spec, folder, name, scheduler):
    """``decode(params) -> store spec``: each trial post-processed block by block into one work store."""
    from connectomics.blockwise import postprocess_blockwise
    from connectomics.engine.runner import connect
    from connectomics.storage import remove_path

    b = cfg.BLOCKWISE
    store = os.path.join(folder, "tune_trial.zarr")
    with connect(cfg, True, scheduler) as client:
        def decode(params):
            return postprocess_blockwise(input_spec, store, name, params, client, block=tuple(b.BLOCK_SIZE),
                                         halo=tuple(b.HALO), retries=b.RETRIES, overwrite=True)

        try:
            yield decode
        finally:
            remove_path(store)


def run_tuning(cfg, input_spec, gt_spec, folder, max_evals=None, scheduler=None):
    """Tune ``cfg.POSTPROCESS`` on files with AP-75; write the heat map and YAML snippet.

    With a scheduler (``scheduler`` or SYSTEM.SCHEDULER) every trial runs blockwise on Dask and is
    scored from its store; otherwise the maps are read into memory once. Returns the text report
    (``format_report``) with the paths written.
    """
    from connectomics.blockwise.build import use_blockwise
    from connectomics.evaluation import build_evaluation
    from connectomics.postprocess.confidence import instance_confidence
    from connectomics.storage import open_volume, read_volume

    name, params = decoder_params(cfg)
    _check_shapes(input_spec, gt_spec)
    evaluate, by_confidence = build_evaluation(cfg), cfg.EVAL.SCORE == "foreground"
    budget = cfg.POSTPROCESS.TUNE.MAX_EVALS if max_evals is None else max_evals  # 0 is an error, not the default
    os.makedirs(folder, exist_ok=True)
    if use_blockwise(cfg, scheduler):
        from connectomics.blockwise.postprocess import check_blockwise

        check_blockwise(name, params)

        def ap75(store):
            with open_volume(store) as labels, open_volume(input_spec) as maps:
                scores = instance_confidence(labels, maps) if by_confidence else None
            return evaluate(gt_spec, store, scores=scores).summary["AP75"]

        with _blockwise_decode(cfg, input_spec, folder, name, scheduler) as decode:
            result = tune_decoder(None, ap75, name, params, tuning_grids(cfg, name), budget, decode=decode)
    else:
        probs, gt = read_volume(input_spec), read_volume(gt_spec)

        def ap75(labels):
            scores = instance_confidence(labels, probs) if by_confidence else None
            return evaluate(gt, labels, scores=scores).summary["AP75"]

        result = tune_decoder(probs, ap75, name, params, tuning_grids(cfg, name), budget)
    heatmap = save_heatmap(result, os.path.join(folder, "tune_heatmap.png"))
    snippet = os.path.join(folder, "tune_best.yaml")
    with open(snippet, "w", encoding="utf-8") as f:
        f.write(best_yaml(result))
    return f"{format_report(result)}\nheat map: {heatmap}\nbest settings: {snippet}\n{best_yaml(result)}"
