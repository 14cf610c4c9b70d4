"""Training hooks: checkpoints, logging (console, log.txt, tensorboard, PNG curve), validation."""
import logging
import os
import shutil

import numpy as np

from connectomics.checkpoint import checkpoint_path, pending_gradients, save_checkpoint
from connectomics.evaluation.scores_csv import append_score, read_scores
from connectomics.engine.trainer import Hook

logger = logging.getLogger(__name__)


class CheckpointHook(Hook):
    """Save ``checkpoint_XXXXXX.pth.tar`` every ``period`` iterations and at the end."""

    def __init__(self, folder, period, architecture, run_id=None, extra=None):
        self.folder, self.period, self.architecture, self.run_id = folder, period, architecture, run_id
        self.extra = extra  # callable -> dict of more entries (a time budget's plan)
        self.last_path = None

    def save(self, trainer):
        path = checkpoint_path(self.folder, trainer.iter)
        if path != self.last_path:
            pending = pending_gradients(trainer.model) if trainer.iter % trainer.accum_steps else None
            extra = {"pending_grads": pending, "run_id": self.run_id, **(self.extra() if self.extra else {})}
            save_checkpoint(path, trainer.model, trainer.optimizer, trainer.scheduler, trainer.iter,
                            self.architecture, trainer.scaler, extra=extra)
            self.last_path = path
            logger.info("saved %s", path)
        return path

    def after_step(self, trainer):
        if trainer.iter % self.period == 0 or trainer.iter == trainer.max_iter:
            self.save(trainer)

    def on_interrupt(self, trainer):
        if trainer.iter > trainer.start_iter:
            self.save(trainer)


class LoggingHook(Hook):
    """Average loss (and per-term losses) every ``period`` iterations to the log and tensorboard.

    Also keeps the history and writes ``training_curve.png`` at the end of training.
    """

    def __init__(self, period, writer=None, folder=None, montage_period=0, montage_slices=8):
        self.period, self.writer, self.folder = period, writer, folder
        self.montage_period, self.montage_slices = montage_period, montage_slices
        self.sums, self.count, self.history = {}, 0, []

    def after_step(self, trainer):
        last = trainer.last
        values = {"loss": last["loss"], **last["terms"]}
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1
        if trainer.iter % self.period == 0 or trainer.iter == trainer.max_iter:
            means = {k: v / self.count for k, v in self.sums.items()}
            terms = " ".join(f"{k}={v:.4f}" for k, v in means.items() if k not in ("loss", "total"))
            logger.info("[iter %06d] loss=%.5f %s lr=%.3g data=%.3fs step=%.3fs", trainer.iter, means["loss"],
                        terms, last["lr"], last["data_time"], last["iter_time"])
            self.history.append((trainer.iter, means["loss"]))
            if self.writer is not None:
                for key, value in means.items():
                    self.writer.add_scalar(f"train/{key}", value, trainer.iter)
                self.writer.add_scalar("train/lr", last["lr"], trainer.iter)
            self.sums, self.count = {}, 0
        if self.writer is not None and self.montage_period and trainer.iter % self.montage_period == 0:
            self.writer.add_image("train/montage", montage(last, self.montage_slices), trainer.iter,
                                  dataformats="HW")

    def after_train(self, trainer):
        if self.writer is not None:
            self.writer.flush()
        if self.folder and self.history:
            from connectomics.utils.plots import plot_curve

            plot_curve([h[0] for h in self.history], {"training loss": [h[1] for h in self.history]},
                       os.path.join(self.folder, "training_curve.png"), ylabel="loss")


def montage(last, slices):
    """A (H, W) float image: rows = input, targets, predictions of sample 0, ``slices`` z slices each."""
    image = last["images"][0, 0].float().cpu().numpy()
    probs = last["logits"][0].float().sigmoid().cpu().numpy()
    targets = np.concatenate([t[0].float().cpu().numpy() for t in last["targets"]])
    zs = np.linspace(0, image.shape[0] - 1, min(slices, image.shape[0])).round().astype(int)
    rows = [np.concatenate([image[z] for z in zs], axis=1)]
    rows += [np.concatenate([vol[z] for z in zs], axis=1) for vol in targets]
    rows += [np.concatenate([vol[z] for z in zs], axis=1) for vol in probs]
    return np.clip(np.concatenate(rows, axis=0), 0, 1)


def copy_atomic(src, dst):
    """Copy ``src`` to ``dst`` under a temporary name, then rename: a kill never leaves a partial ``dst``."""
    from connectomics.storage import atomic_path

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


class ValidationHook(Hook):
    """Every ``period`` iterations: ``validate(model) -> summary dict``; keep ``best.pth.tar``.

    ``validate`` runs sliding-window inference + post-processing + AP-75 in-process.
    Results are recorded in ``validation.csv`` (``iteration,AP75,AP50``, the layout of the
    scores CSV) and plotted to ``validation_ap.png``; ``metric`` (AP75 or AP50) picks the best.
    """

    def __init__(self, period, validate, folder, checkpointer, writer=None, metric="AP75"):
        self.period, self.validate, self.folder = period, validate, folder
        self.checkpointer, self.writer, self.metric = checkpointer, writer, metric
        self.csv_path = os.path.join(folder, "validation.csv")
        self.best = max((row[1] for row in self._rows()), default=-np.inf)

    def _rows(self):
        """``[(iteration, metric)]`` of validation.csv, by iteration."""
        return sorted((it, scores[self.metric]) for it, scores in read_scores(self.csv_path).items())

    def run(self, trainer):
        summary = self.validate(trainer.model)
        trainer.model.train()
        value = float(summary[self.metric])
        logger.info("[iter %06d] validation %s=%.4f (AP50=%.4f)", trainer.iter, self.metric, value,
                    summary.get("AP50", float("nan")))
        # a row of the same iteration (a killed run redoing it) is replaced, atomically
        append_score(self.csv_path, trainer.iter, {"AP75": summary["AP75"], "AP50": summary.get("AP50", float("nan"))})
        if self.writer is not None:
            self.writer.add_scalar(f"val/{self.metric}", value, trainer.iter)
        if value > self.best:
            self.best = value
            path = self.checkpointer.save(trainer)
            copy_atomic(path, os.path.join(self.folder, "best.pth.tar"))
            logger.info("new best %s=%.4f: best.pth.tar", self.metric, value)
        from connectomics.utils.plots import plot_curve

        rows = self._rows()
        plot_curve([r[0] for r in rows], {self.metric: [r[1] for r in rows]},
                   os.path.join(self.folder, "validation_ap.png"), ylabel=self.metric)

    def after_step(self, trainer):
        if trainer.iter % self.period == 0:
            self.run(trainer)
