"""Exported and shipped weights: MODEL.PRE_MODEL reads them, `shipped:<name>` finds them."""
import pytest
import torch

from connectomics.config import ConfigError, load_cfg


def small_cfg(*opts):
    return load_cfg(None, ["MODEL.FILTERS", "[2, 4]", "MODEL.INPUT_SIZE", "[4, 32, 32]", "INFERENCE.STRIDE", "[2, 16, 16]",
                           *opts])


def test_exported_weights_drop_the_training_state_and_initialise_a_model(tmp_path):
    from connectomics.checkpoint import export_weights, load_model_weights, read_checkpoint, save_checkpoint
    from connectomics.engine.solver import build_lr_scheduler, build_optimizer
    from connectomics.model import build_model

    cfg = small_cfg()
    torch.manual_seed(1)
    model = build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    checkpoint = save_checkpoint(str(tmp_path / "checkpoint_000007.pth.tar"), model, optimizer,
                                 build_lr_scheduler(cfg, optimizer), 7, cfg.MODEL.ARCHITECTURE)
    out = export_weights(checkpoint, str(tmp_path / "w.pth"), made_with="a test, 7 iterations")
    saved = torch.load(out, weights_only=False)
    assert set(saved) == {"state_dict", "architecture", "iteration", "made_with"} and saved["iteration"] == 7
    fresh = build_model(cfg)
    load_model_weights(fresh, read_checkpoint(out, bare=True), cfg.MODEL.ARCHITECTURE, out)
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)


def test_shipped_names_resolve_inside_the_package(tmp_path, monkeypatch):
    import connectomics.weights as weights

    monkeypatch.setattr(weights, "FOLDER", str(tmp_path))
    (tmp_path / "tiny.pth").write_bytes(b"")
    cfg = small_cfg("MODEL.PRE_MODEL", "shipped:tiny")
    assert cfg.MODEL.PRE_MODEL == str(tmp_path / "tiny.pth")
    with pytest.raises(ConfigError, match="no shipped weights 'other'; available: tiny"):
        small_cfg("MODEL.PRE_MODEL", "shipped:other")


def _dice(a, b):
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def test_every_shipped_weights_file_loads_into_its_model_and_finds_synthetic_mitochondria():
    """The files in connectomics/weights fit the configs that name them, and infer: on a synthetic
    volume of another seed than they were trained on, their foreground map matches the labels
    (Dice > 0.7) where the same model freshly initialised does not (Dice < 0.5)."""
    import os

    import connectomics.weights as weights
    from connectomics.checkpoint import load_model_weights, read_checkpoint
    from connectomics.data.synthetic import make_synthetic_pair
    from connectomics.inference.predictor import build_predictor, predict_volume
    from connectomics.model import build_model

    assert weights.available(), "no weights shipped in connectomics/weights"
    config = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "Finetune", "Finetune-BC.yaml")
    image, label = make_synthetic_pair((8, 96, 96), seed=7)
    for name in weights.available():
        cfg = load_cfg(config, ["SYSTEM.DEVICE", "cpu", "DATASET.IMAGE_NAME", "a.h5", "DATASET.LABEL_NAME", "b.h5",
                                "INFERENCE.IMAGE_NAME", "c.h5", "EVAL.GT_NAME", "", "SYSTEM.CPU_BF16", "off",
                                "MODEL.PRE_MODEL", f"shipped:{name}"])
        state = read_checkpoint(cfg.MODEL.PRE_MODEL, bare=True)
        assert state["made_with"]
        torch.manual_seed(0)
        fresh = build_model(cfg)
        trained = build_model(cfg)
        load_model_weights(trained, state, cfg.MODEL.ARCHITECTURE, cfg.MODEL.PRE_MODEL)
        dice = [_dice(predict_volume(build_predictor(cfg, model), image)[0] > 127, label > 0)
                for model in (trained, fresh)]
        assert dice[0] > 0.7 and dice[1] < 0.5, (name, dice)
