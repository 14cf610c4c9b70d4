"""The training loop and its checkpoint hooks, in process on a tiny model (no data files)."""
import pytest
import torch

from connectomics.checkpoint import read_checkpoint, restore_training_state
from connectomics.engine.hooks import CheckpointHook, ValidationHook, copy_atomic
from connectomics.engine.trainer import Trainer


def _batches(start):
    """A deterministic batch per iteration index (like the real loader: samples depend on the index only)."""
    it = start
    while True:
        g = torch.Generator().manual_seed(it)
        image = torch.rand(2, 1, 2, 8, 8, generator=g)
        yield image, [(image > 0.5).float()], [None]
        it += 1


def _criterion(logits, targets, weights):
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets[0])
    return loss, {"bce": float(loss)}


def _setup(start=0, folder=None, max_iter=6, accum=2, save_every=100):
    torch.manual_seed(0)
    model = torch.nn.Conv3d(1, 1, 3, padding=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 1.0)
    hooks = [CheckpointHook(folder, save_every, "conv")] if folder else []
    trainer = Trainer(model, _criterion, optimizer, scheduler, _batches(start), start, max_iter,
                      torch.device("cpu"), accum_steps=accum, hooks=hooks)
    return trainer


def test_resume_between_accumulation_steps_matches_an_uninterrupted_run(tmp_path):
    """ITERATION_STEP 2, checkpoint after 3 iterations: the gradient of iteration 3 must survive the resume."""
    reference = _setup()
    reference.train()
    first = _setup(folder=str(tmp_path), max_iter=3)
    first.train()  # the end of a run (or a kill after its checkpoint): checkpoint_000003 mid-accumulation
    state = read_checkpoint(str(tmp_path / "checkpoint_000003.pth.tar"))
    resumed = _setup(start=3)
    resumed.model.load_state_dict(state["state_dict"])
    assert restore_training_state(state, resumed.optimizer, resumed.scheduler, model=resumed.model) == 3
    resumed.train()
    for a, b in zip(reference.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_checkpoint_after_an_optimizer_step_holds_no_gradients(tmp_path):
    trainer = _setup(folder=str(tmp_path), max_iter=4, save_every=2)
    trainer.train()
    for name in ("checkpoint_000002.pth.tar", "checkpoint_000004.pth.tar"):
        assert read_checkpoint(str(tmp_path / name))["pending_grads"] is None


def test_best_checkpoint_is_replaced_atomically(tmp_path, monkeypatch):
    """A run killed while copying a new best.pth.tar keeps the previous one whole."""
    trainer = _setup(folder=str(tmp_path), max_iter=2, accum=1)
    scores = iter([0.5, 0.9])
    hook = ValidationHook(1, lambda model: {"AP75": next(scores), "AP50": 1.0}, str(tmp_path), trainer.hooks[0])
    trainer.iter = 1
    hook.run(trainer)
    best = tmp_path / "best.pth.tar"
    assert read_checkpoint(str(best))["iteration"] == 1

    def killed(src, dst):  # the copy dies half-way
        with open(dst, "wb") as f:
            f.write(open(src, "rb").read(100))
        raise KeyboardInterrupt

    monkeypatch.setattr("shutil.copyfile", killed)
    trainer.iter = 2
    with pytest.raises(KeyboardInterrupt):
        hook.run(trainer)
    assert read_checkpoint(str(best))["iteration"] == 1  # still the whole previous best
    monkeypatch.undo()
    copy_atomic(str(tmp_path / "checkpoint_000002.pth.tar"), str(best))
    assert read_checkpoint(str(best))["iteration"] == 2
    assert not list(tmp_path.glob(".*.partial"))


def test_progress_bar_counts_the_iterations_run(monkeypatch):
    bars = []

    class Bar:
        def __init__(self, total, initial, **kwargs):
            self.n, self.total, self.disable = initial, total, kwargs.get("disable")
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            self.n += n

    monkeypatch.setattr("connectomics.engine.trainer.tqdm", Bar)
    _setup(start=2, max_iter=5).train()  # a resumed run: the bar starts at the resumed iteration
    assert [(b.n, b.total, b.disable) for b in bars] == [(5, 5, None)]


def test_training_curve_png_is_replaced_atomically(tmp_path, monkeypatch):
    """training_curve.png / validation_ap.png: a write that dies keeps the previous image whole."""
    import matplotlib.figure

    from connectomics.utils.plots import plot_curve

    path = tmp_path / "training_curve.png"
    plot_curve([1, 2], {"loss": [1.0, 0.5]}, str(path))
    before = path.read_bytes()
    assert before.startswith(b"\x89PNG")

    def killed(self, fname, **kwargs):  # the write dies half-way
        with open(fname, "wb") as f:
            f.write(before[:50])
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", killed)
    with pytest.raises(KeyboardInterrupt):
        plot_curve([1, 2, 3], {"loss": [1.0, 0.5, 0.2]}, str(path))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["training_curve.png"]


def test_validation_redone_after_a_resume_replaces_its_row(tmp_path):
    """A run killed after validating iteration 2 but resumed from an earlier checkpoint validates 2
    again: validation.csv keeps one row per iteration (the newer value), sorted."""
    trainer = _setup(folder=str(tmp_path), max_iter=3, accum=1)
    scores = iter([0.3, 0.5, 0.4, 0.6])
    hook = ValidationHook(1, lambda model: {"AP75": next(scores), "AP50": 0.7}, str(tmp_path), trainer.hooks[0])
    for it in (1, 2):
        trainer.iter = it
        hook.run(trainer)
    resumed = ValidationHook(1, hook.validate, str(tmp_path), trainer.hooks[0])
    assert resumed.best == 0.5
    for it in (2, 3):
        trainer.iter = it
        resumed.run(trainer)
    lines = (tmp_path / "validation.csv").read_text().splitlines()
    assert lines == ["iteration,AP75,AP50", "1,0.300000,0.700000", "2,0.400000,0.700000", "3,0.600000,0.700000"]


def test_accumulation_does_not_warn_about_the_scheduler_order(recwarn):
    _setup(max_iter=4, accum=2).train()  # the first scheduler step precedes the first optimizer step
    assert not [w for w in recwarn if "lr_scheduler" in str(w.message)]


def test_pre_model_may_be_a_plain_state_dict(tmp_path):
    """MODEL.PRE_MODEL weights saved by other code (torch.save(model.state_dict())) load; a resume
    checkpoint must still be a full connectomics checkpoint."""
    from connectomics.checkpoint import CheckpointMismatchError, load_model_weights

    source, target = torch.nn.Conv3d(1, 2, 3), torch.nn.Conv3d(1, 2, 3)
    torch.save(source.state_dict(), tmp_path / "weights.pth")
    load_model_weights(target, read_checkpoint(str(tmp_path / "weights.pth"), bare=True), "conv")
    assert torch.equal(source.weight, target.weight)
    with pytest.raises(CheckpointMismatchError, match="no 'state_dict'"):
        read_checkpoint(str(tmp_path / "weights.pth"))
    with pytest.raises(CheckpointMismatchError, match="bias"):
        load_model_weights(torch.nn.Conv3d(1, 2, 3, bias=False),
                           read_checkpoint(str(tmp_path / "weights.pth"), bare=True), "conv")


def test_restarted_run_resumes_its_own_checkpoints(tmp_path):
    """SOLVER.ITERATION_RESTART: the first start takes --checkpoint's weights at iteration 0; once the
    run has saved its own checkpoint, the same command resumes that one (a kill loses nothing)."""
    from connectomics.checkpoint import save_checkpoint
    from connectomics.config import load_cfg
    from connectomics.engine.solver import build_lr_scheduler, build_optimizer
    from connectomics.engine.train import _resume
    from connectomics.model import build_model

    cfg = load_cfg(None, ["MODEL.FILTERS", "[2, 4]", "DATASET.OUTPUT_PATH", str(tmp_path / "run"),
                          "SOLVER.ITERATION_RESTART", "True"])

    def fresh():
        torch.manual_seed(0)
        model = build_model(cfg)
        optimizer = build_optimizer(cfg, model)
        return model, optimizer, build_lr_scheduler(cfg, optimizer)

    other, optimizer, scheduler = fresh()
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    source = str(tmp_path / "elsewhere" / "checkpoint_005000.pth.tar")
    save_checkpoint(source, other, optimizer, scheduler, 5000, cfg.MODEL.ARCHITECTURE)
    model, optimizer, scheduler = fresh()
    assert _resume(cfg, source, model, optimizer, scheduler, None)[0] == 0
    assert torch.equal(next(model.parameters()), next(other.parameters()))
    save_checkpoint(str(tmp_path / "run" / "checkpoint_000040.pth.tar"), model, optimizer, scheduler, 40,
                    cfg.MODEL.ARCHITECTURE)
    model, optimizer, scheduler = fresh()
    assert _resume(cfg, source, model, optimizer, scheduler, None)[0] == 40  # the same command after a kill
