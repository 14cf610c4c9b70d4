"""A small training loop; checkpointing, logging and validation are hooks.

``trainer.iter`` counts finished iterations: after ``run_step`` for the
iteration with 0-based index ``i``, ``trainer.iter == i + 1``, and a checkpoint
written then resumes at sample index ``(i + 1) * batch_size``.
"""
import contextlib
import logging
import signal
import threading
import time
import warnings

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from connectomics.engine.solver import clip_gradients
from connectomics.utils.precision import autocast

logger = logging.getLogger(__name__)


class Hook:
    """Base class: override any of the callbacks."""

    def before_train(self, trainer):
        pass

    def after_step(self, trainer):
        pass

    def after_train(self, trainer):
        pass

    def on_interrupt(self, trainer):
        """SIGINT / SIGTERM arrived; ``trainer.iter`` iterations are finished."""


class Interrupted(KeyboardInterrupt):
    """Training stopped by a signal after ``iteration`` finished iterations (saved by the checkpoint hook)."""

    def __init__(self, signum, iteration=None):
        super().__init__(signum, iteration)
        self.signum, self.iteration = signum, iteration


@contextlib.contextmanager
def _deferred_signals():
    """While training: SIGINT / SIGTERM are noted (in the yielded list) instead of raised, so the
    current step finishes and a checkpoint can be saved; a second SIGINT raises at once.
    Outside the main thread (signal handlers cannot be set there) nothing changes."""
    stop = []
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def note(signum, frame):
        if stop and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.append(signum)
        logger.warning("%s: stopping after this iteration and saving a checkpoint (Ctrl-C again to stop now)",
                       signal.Signals(signum).name)

    previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def _logs_above(bar):
    """While a shown tqdm ``bar`` runs, console log lines print above it (not through it), at
    the level the console handler had (MONITOR.LOG_OPT[0] = 0 keeps INFO lines off)."""
    if bar.disable:
        yield
        return
    root = logging.getLogger()
    before = list(root.handlers)
    levels = [h.level for h in before if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    with logging_redirect_tqdm():
        for handler in root.handlers:
            if handler not in before:  # the handlers tqdm put in place of the console ones
                handler.setLevel(max(levels, default=logging.NOTSET))
        yield


class Trainer:
    """Runs iterations ``start_iter .. max_iter - 1`` over ``batches``.

    Args:
        batches: iterator of ``(image (B,1,Z,Y,X), [targets], [weights or None])`` CPU tensors.
        accum_steps: optimizer step every ``accum_steps`` iterations (gradient accumulation;
            the loss is divided by it so the step sees the mean gradient).
        clip: None or ``(clip_type, value, norm_type)``.
        dtype: autocast type (None = float32; float16 adds a GradScaler, bfloat16 needs none).
        progress: tqdm bar of the iterations: None = only on a terminal, False = never.
    """

    def __init__(self, model, criterion, optimizer, scheduler, batches, start_iter, max_iter, device,
                 accum_steps=1, clip=None, dtype=None, scaler=None, hooks=(), progress=None):
        self.model, self.criterion, self.optimizer, self.scheduler = model, criterion, optimizer, scheduler
        self.batches, self.device = batches, device
        self.start_iter, self.max_iter, self.iter = start_iter, max_iter, start_iter
        self.accum_steps, self.clip = max(1, accum_steps), clip
        self.dtype = dtype
        scale = dtype == torch.float16 and device.type == "cuda"
        self.scaler = scaler if scaler is not None else torch.amp.GradScaler("cuda", enabled=scale)
        self.hooks = list(hooks)
        self.progress = progress
        self.last = {}

    def train(self):
        """Run to ``max_iter`` (nothing to do if already there), calling the hooks.

        SIGINT / SIGTERM (Ctrl-C, a scheduler's stop) end the current step; then the hooks'
        ``on_interrupt`` run (a checkpoint of the finished iterations is saved) and
        :class:`Interrupted` is raised. A second Ctrl-C stops at once.
        """
        self.model.train()
        for hook in self.hooks:
            hook.before_train(self)
        disable = None if self.progress is None else not self.progress
        with tqdm(total=self.max_iter, initial=self.iter, unit="it", desc="train", disable=disable) as bar, \
                _logs_above(bar), _deferred_signals() as stop:
            while self.iter < self.max_iter:
                if bar.total != self.max_iter:  # a time budget planned the length
                    bar.total = self.max_iter
                    bar.refresh()
                try:
                    self.run_step()
                except Exception:  # a data-loader worker that died of the same Ctrl-C
                    if not stop:
                        raise
                    self._interrupted(stop[0])
                self.iter += 1
                bar.update(1)
                for hook in self.hooks:
                    hook.after_step(self)
                if stop:
                    self._interrupted(stop[0])
        for hook in self.hooks:
            hook.after_train(self)

    def _interrupted(self, signum):
        for hook in self.hooks:
            hook.on_interrupt(self)
        raise Interrupted(signum, self.iter)

    def run_step(self):
        start = time.perf_counter()
        images, targets, weights = next(self.batches)
        data_time = time.perf_counter() - start
        images = images.to(self.device, non_blocking=True)
        targets = [t.to(self.device, non_blocking=True) for t in targets]
        weights = [None if w is None else w.to(self.device, non_blocking=True) for w in weights]
        with autocast(self.device.type, self.dtype):
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
        with warnings.catch_warnings():  # the schedule counts iterations: with accumulation (or an AMP
            # step skipped for inf gradients) it starts before the first optimizer step, on purpose
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            self.scheduler.step()
        self.last = {
            "loss": float(loss.detach()), "terms": terms, "lr": self.optimizer.param_groups[0]["lr"],
            "data_time": data_time, "iter_time": time.perf_counter() - start,
            "images": images, "logits": logits.detach(), "targets": targets,
        }
