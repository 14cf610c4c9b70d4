"""A small training loop; checkpointing, logging and validation are hooks.

``trainer.iter`` counts finished iterations: after ``run_step`` for the
iteration with 0-based index ``i``, ``trainer.iter == i + 1``, and a checkpoint
written then resumes at sample index ``(i + 1) * batch_size``.
"""
import contextlib
import logging
import time

import torch

from connectomics.engine.solver import clip_gradients

logger = logging.getLogger(__name__)


class Hook:
    """Base class: override any of the three callbacks."""

    def before_train(self, trainer):
        pass

    def after_step(self, trainer):
        pass

    def after_train(self, trainer):
        pass


class Trainer:
    """Runs iterations ``start_iter .. max_iter - 1`` over ``batches``.

    Args:
        batches: iterator of ``(image (B,1,Z,Y,X), [targets], [weights or None])`` CPU tensors.
        accum_steps: optimizer step every ``accum_steps`` iterations (gradient accumulation;
            the loss is divided by it so the step sees the mean gradient).
        clip: None or ``(clip_type, value, norm_type)``.
        amp: autocast + GradScaler (CUDA only).
    """

    def __init__(self, model, criterion, optimizer, scheduler, batches, start_iter, max_iter, device,
                 accum_steps=1, clip=None, amp=False, scaler=None, hooks=()):
        self.model, self.criterion, self.optimizer, self.scheduler = model, criterion, optimizer, scheduler
        self.batches, self.device = batches, device
        self.start_iter, self.max_iter, self.iter = start_iter, max_iter, start_iter
        self.accum_steps, self.clip = max(1, accum_steps), clip
        self.amp = bool(amp) and device.type == "cuda"
        self.scaler = scaler if scaler is not None else torch.amp.GradScaler("cuda", enabled=self.amp)
        self.hooks = list(hooks)
        self.last = {}

    def train(self):
        """Run to ``max_iter`` (nothing to do if already there), calling the hooks."""
        self.model.train()
        for hook in self.hooks:
            hook.before_train(self)
        while self.iter < self.max_iter:
            self.run_step()
            self.iter += 1
            for hook in self.hooks:
                hook.after_step(self)
        for hook in self.hooks:
            hook.after_train(self)

    def _autocast(self):
        if self.amp:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def run_step(self):
        start = time.perf_counter()
        images, targets, weights = next(self.batches)
        data_time = time.perf_counter() - start
        images = images.to(self.device, non_blocking=True)
        targets = [t.to(self.device, non_blocking=True) for t in targets]
        weights = [None if w is None else w.to(self.device, non_blocking=True) for w in weights]
        with self._autocast():
            logits = self.model(images)
        loss, terms = self.criterion(logits.float(), targets, weights)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at iteration {self.iter}; lower SOLVER.BASE_LR")
        self.scaler.scale(loss / self.accum_steps).backward()
        if (self.iter + 1) % self.accum_steps == 0:
            if self.clip is not None:
                self.scaler.unscale_(self.optimizer)
                clip_gradients(self.model.parameters(), *self.clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.last = {
            "loss": float(loss.detach()), "terms": terms, "lr": self.optimizer.param_groups[0]["lr"],
            "data_time": data_time, "iter_time": time.perf_counter() - start,
            "images": images, "logits": logits.detach(), "targets": targets,
        }
