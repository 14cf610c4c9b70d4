"""Extending the tables from outside the package: a decoder with a new keyword and a new target
kind, registered here, work in every stage (decoding, blockwise on the in-process runner, tuning,
the config door; training one step and inference through scripts/main.py)."""
import importlib.util
import os

import h5py
import numpy as np
import pytest
import torch

from connectomics.blockwise import postprocess_blockwise
from connectomics.config import load_cfg
from connectomics.data.targets import TARGETS, Target, register_target
from connectomics.fixtures.scenes import maps_from_labels, random_ellipsoids
from connectomics.postprocess import (DECODERS, BlockPlan, Decoder, build_decoder, decode, register_decoder,
                                      remove_small_instances, seeded_watershed, threshold_level)
from connectomics.postprocess.seeds import label_seeds
from connectomics.postprocess.tuning import best_yaml, tune_decoder
from connectomics.storage import read_volume

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _reach(fg, labels, reach):
    seeded_watershed(fg, labels, max_level=254 - threshold_level(reach, "reach"), invert=True, connectivity=6,
                     inplace=True)


def reach_decoder(probs, seed_threshold=0.9, reach=0.4, min_size=0):
    """Toy decoder with a keyword no built-in has: seeds of fg > seed, flooded where fg > ``reach``."""
    fg = np.asarray(probs)[0]
    labels, n = label_seeds(fg, None, seed_threshold, None, 6)
    _reach(fg, labels, reach)
    return remove_small_instances(labels, min_size)[0]


def reach_block(labels, read_maps, params):
    _reach(read_maps(1)[0], labels, params["reach"])


@pytest.fixture()
def reach_registered():
    entry = register_decoder(Decoder("toy_reach", reach_decoder, channels=1, axes=("seed_threshold", "reach"),
                                     grids={"seed_threshold": (0.8, 0.9), "reach": (0.2, 0.6)},
                                     blockwise=BlockPlan(reach_block, contour=False)))
    yield entry
    del DECODERS["toy_reach"]


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(5)
    labels = random_ellipsoids((24, 96, 96), 10, rng, radius_yx=(6, 14), radius_z=(3, 6))
    return labels, maps_from_labels(labels, rng)


def test_registered_decoder_works_single_blockwise_tuning_and_config(reach_registered, scene, tmp_path):
    labels, maps = scene
    single = decode(maps, "toy_reach", seed_threshold=0.85, reach=0.3)
    assert single.max() >= 5 and not np.array_equal(single, decode(maps, "toy_reach", reach=0.7))
    # blockwise, in-process runner, 8 blocks: the same instances as the single process
    src = str(tmp_path / "maps.h5")
    with h5py.File(src, "w") as f:
        f["main"] = maps
    out = postprocess_blockwise(src + ":main", str(tmp_path / "seg.zarr"), "toy_reach",
                                {"seed_threshold": 0.85, "reach": 0.3}, block=(12, 48, 48), halo=(12, 48, 48))
    np.testing.assert_array_equal(read_volume(out), single)
    # tuning searches the new keyword from the decoder's entry
    truth = labels > 0

    def score(pred):
        return float(((pred > 0) == truth).mean())

    result = tune_decoder(maps, score, "toy_reach", {"seed_threshold": 0.9, "reach": 0.9},
                          {"seed_threshold": [0.8, 0.9], "reach": [0.2, 0.6]}, max_evals=10, progress=False)
    assert {p["reach"] for p, _ in result.trials} >= {0.2, 0.6} and result.best_params["reach"] < 0.9
    assert "REACH: " in best_yaml(result) and result.axes[1][0] == "reach"
    # the config door: POSTPROCESS.DECODER names it; keywords without a config key keep their default
    cfg = load_cfg(None, ["POSTPROCESS.DECODER", "toy_reach", "POSTPROCESS.SEED_THRESHOLD", "0.85",
                          "POSTPROCESS.MIN_SIZE", "0"])
    np.testing.assert_array_equal(build_decoder(cfg)(maps), decode(maps, "toy_reach", seed_threshold=0.85))


def inverted_foreground(label):
    """Toy target: 1 on background, 0 inside instances."""
    return (np.asarray(label) == 0).astype(np.float32)[None]


def _no_numbers(parts):
    if parts:
        raise ValueError("no numbers")
    return {}


@pytest.fixture()
def background_target():
    entry = register_target(Target("9", "background", 1, inverted_foreground, _no_numbers, losses=("WeightedBCE",),
                                   code="9", description="background (toy)"))
    yield entry
    del TARGETS["9"]


def test_registered_target_trains_and_infers(background_target, tmp_path):
    from test_engine import tiny_config

    spec = importlib.util.spec_from_file_location("main_script", os.path.join(REPO, "scripts", "main.py"))
    main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main)
    config = tiny_config(tmp_path, total=1, save=1)
    opts = ["MODEL.TARGET_OPT", "['0', '9']", "MODEL.WEIGHT_OPT", "[['1'], ['1']]",
            "MODEL.LOSS_OPTION", "[['WeightedBCE'], ['WeightedBCE']]", "MODEL.LOSS_WEIGHT", "[[1.0], [1.0]]"]
    assert main.main(["--config-file", config, "--opts", *opts]) == 0
    log = open(tmp_path / "outputs" / "Synthetic-BC" / "log.txt").read()
    assert "background/WeightedBCE=" in log
    with h5py.File(tmp_path / "outputs" / "Synthetic-BC" / "inference" / "probs.h5") as f:
        assert f["main"].shape[0] == 2
    # a loss the target does not take is refused when the config loads
    bad = opts[:-4] + ["MODEL.LOSS_OPTION", "[['WeightedBCE'], ['DiceLoss']]", "MODEL.LOSS_WEIGHT", "[[1.0], [1.0]]"]
    with pytest.raises(ValueError, match="DiceLoss.*does not apply to target '9'"):
        load_cfg(config, bad)


class _TwoChannels(torch.nn.Module):
    def forward(self, x):
        return torch.cat([4 * x - 2, x], 1)


def test_each_target_brings_its_output_activation(tmp_path):
    """Inference applies each target's activation to its channels; all-sigmoid keeps one name in the
    maps' settings (files made before the table keep matching)."""
    from connectomics.inference.predictor import build_predictor, output_activations

    register_target(Target("8", "ratio", 1, inverted_foreground, _no_numbers, activation="none", code="8"))
    try:
        opts = ["MODEL.TARGET_OPT", "['0', '8']", "MODEL.OUT_PLANES", "2", "MODEL.WEIGHT_OPT", "[['1'], ['1']]",
                "MODEL.LOSS_OPTION", "[['WeightedBCE'], ['WeightedBCE']]", "MODEL.LOSS_WEIGHT", "[[1.0], [1.0]]",
                "INFERENCE.INPUT_SIZE", "[2, 16, 16]", "INFERENCE.STRIDE", "[2, 16, 16]"]
        cfg = load_cfg(None, opts)
        assert output_activations(cfg) == ["sigmoid", "none"]
        predictor = build_predictor(cfg, _TwoChannels())
        x = torch.rand(1, 1, 2, 16, 16)
        y = predictor.forward(x.clone())
        torch.testing.assert_close(y[:, 0], torch.sigmoid(4 * x[:, 0] - 2))
        torch.testing.assert_close(y[:, 1], x[:, 0])
        assert predictor.settings()["output_act"] == ["sigmoid", "none"]
        assert build_predictor(load_cfg(None, ["MODEL.OUTPUT_ACT", "none"] + opts), _TwoChannels()).output_act == "none"
    finally:
        del TARGETS["8"]
    assert build_predictor(load_cfg(None, []), _TwoChannels()).settings()["output_act"] == "sigmoid"
