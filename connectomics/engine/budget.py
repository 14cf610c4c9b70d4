"""Training to a wall-clock budget (``SOLVER.TIME_BUDGET``, minutes) instead of an iteration count.

The budget counts from the start of the command and covers what the command does: data
preparation, training, the periodic validations, and (with ``SYSTEM.INFER_AFTER_TRAIN``) the
inference, decoding and scoring after training. The schedule fits itself to it::

    start ... calibration (CALIBRATION iterations, timed) -> plan: total = the iterations that fit
          ... at a third and at two thirds of the plan: planned again with the steps timed since the
              last plan (a machine whose speed changes is followed)
          ... training to the planned total (cosine schedule over it) -> inference reserve -> done

``total`` solves ``total * step + (total // ITERATION_VAL) * validation = time left - reserve``,
where ``step`` is the measured seconds per iteration, ``validation`` and ``reserve`` come from a
timed inference batch (run as inference runs it, ``Predictor.time_batch``) times the batches of
the volumes. A guard stops the training (with a checkpoint) if the clock passes the training
deadline anyway. The plan is saved in every checkpoint: a resumed run keeps the budget and the
planned total it started with, so it runs the same schedule as an uninterrupted one.
"""
import logging
import math
import time

from connectomics.engine.trainer import Hook

logger = logging.getLogger(__name__)

CALIBRATION = 20  # iterations timed before the plan (the first few, with loader start-up, are skipped)
SKIP = 3  # calibration iterations not timed
REPLAN_AT = (1 / 3, 2 / 3)  # fractions of the plan at which it is made again, from the steps timed since the last
SAFETY = 1.1  # reserve and validation estimates are multiplied by this
FIXED_RESERVE = (5.0, 0.01)  # kept after training besides the inference (checkpoint, overlay, reports):
# 5 s plus 1% of the budget


def plan_total(now, deadline, seconds_per_step, reserve, validation_seconds=0.0, validation_period=0, step=1):
    """The iteration count that fits: ``total`` iterations of ``seconds_per_step`` from ``now``,
    plus one validation of ``validation_seconds`` every ``validation_period`` iterations, end
    ``reserve`` seconds before ``deadline``. Returns the number of further iterations, a multiple
    of ``step`` (gradient accumulation), at least ``step``."""
    left = max(0.0, deadline - now - reserve)
    per_iter = seconds_per_step + (validation_seconds / validation_period if validation_period else 0.0)
    more = int(left / max(per_iter, 1e-9))
    return max(step, more // step * step)


class BudgetHook(Hook):
    """Plans ``trainer.max_iter`` and the schedule's length from the measured step time.

    ``schedule``: the :class:`~connectomics.engine.solver.CosineSchedule` whose ``total`` is set;
    ``deadline``: wall-clock time (``clock()`` units) by which the whole command should end;
    ``reserve``: seconds kept for the work after training; ``validation``: ``(seconds, period)``
    of the periodic validations, or None; ``planned``: the total of a resumed run's plan (then
    nothing is planned again). ``clock``: ``time.time`` (tests pass a fake one).
    """

    def __init__(self, schedule, deadline, reserve, validation=None, planned=None, step=1, clock=time.time):
        self.schedule, self.deadline, self.reserve, self.step = schedule, deadline, reserve, step
        self.validation = validation or (0.0, 0)
        self.clock = clock
        self.planned = planned
        self.replans = [] if planned is not None else list(REPLAN_AT)  # fractions still to come
        self.times = []  # step end times (clock) since the last plan
        self.start_iter = None

    def before_train(self, trainer):
        self.start_iter = trainer.iter
        if self.planned is not None:
            self._apply(trainer, self.planned, "resumed run keeps its plan")

    @property
    def replanned(self):
        return len(self.replans) < len(REPLAN_AT)

    def after_step(self, trainer):
        now = self.clock()
        self.times.append(now)
        done = trainer.iter - self.start_iter
        if self.planned is None and done >= CALIBRATION:
            self._plan(trainer, now, self.times[SKIP:], "planned")
        elif self.replans and self.planned is not None and trainer.iter >= self.planned * self.replans[0]:
            self.replans.pop(0)
            self._plan(trainer, now, self.times, "planned again")
        if trainer.iter < trainer.max_iter and now > self.deadline - self.reserve:
            logger.warning("time budget: the training deadline has passed; stopping at iteration %d of %d",
                           trainer.iter, trainer.max_iter)
            self._apply(trainer, trainer.iter, None)

    def _plan(self, trainer, now, times, what):
        per_step = (times[-1] - times[0]) / max(len(times) - 1, 1)
        seconds, period = self.validation
        more = plan_total(now, self.deadline, per_step, self.reserve, seconds, period, self.step)
        self._apply(trainer, trainer.iter + more,
                    f"{what}: {trainer.iter + more} iterations ({per_step:.3f} s each, "
                    f"{self.reserve:.0f} s kept for the work after training)")
        self.times = [now]

    def _apply(self, trainer, total, message):
        self.planned = int(total)
        trainer.max_iter = self.planned
        self.schedule.total = self.planned
        if message:
            logger.info("time budget: %s", message)

    def state(self):
        """What checkpoints keep of the plan (None before it is made)."""
        return None if self.planned is None else {"planned_total": int(self.planned)}


def inference_seconds(batch_seconds, volume_shapes, tiling_of, batch_size, voxel_seconds=3e-8):
    """Estimated seconds to infer, decode and score volumes of ``volume_shapes``.

    ``batch_seconds()``: the seconds of one inference batch (``Predictor.time_batch``);
    ``tiling_of(shape)``: the :class:`~connectomics.inference.tiling.Tiling` of a volume.
    Decoding and scoring are taken as ``voxel_seconds`` per voxel (bc_watershed + confidence
    table + evaluation measured at 15-30 ns per voxel).
    """
    seconds = batch_seconds()
    total = 0.0
    for shape in volume_shapes:
        tiling = tiling_of(shape)
        total += math.ceil(tiling.windows_computed() / batch_size) * seconds + math.prod(shape) * voxel_seconds
    return total * SAFETY


def _volume_shapes(names):
    from connectomics.storage import open_volume, split_names

    out = []
    for spec in split_names(names):
        with open_volume(spec) as volume:
            out.append(tuple(int(n) for n in volume.shape[-3:]))
    return out


def build_budget_hook(cfg, model, device, scheduler, planned=None, started=None, validation=False):
    """The :class:`BudgetHook` of ``cfg.SOLVER.TIME_BUDGET`` for this training run.

    ``planned``: the planned total of a resumed run (kept); ``started``: ``time.time()`` at the
    start of the command (default now); ``validation``: periodic validation is on. The reserve for
    the work after training and the cost of a validation are estimated from an inference batch
    timed as inference runs it (``Predictor.time_batch``: layout, autocast, test-time augmentation)
    times the batches of the volumes' windows.
    """
    from connectomics.config import ConfigError
    from connectomics.engine.distributed import world
    from connectomics.engine.solver import schedule_length
    from connectomics.inference import build_predictor
    from connectomics.storage import split_names

    if world()[1] > 1:
        raise ConfigError("SOLVER.TIME_BUDGET is for one process; with torchrun set SOLVER.ITERATION_TOTAL instead")
    schedule = schedule_length(scheduler)
    if schedule is None:
        raise ConfigError("SOLVER.TIME_BUDGET needs SOLVER.LR_SCHEDULER_NAME WarmupCosineLR (a schedule that "
                          "stretches to the planned length)")
    predictor = build_predictor(cfg, model, device)

    def cost(names):
        found = _volume_shapes(names)
        if not found:
            return 0.0
        return inference_seconds(predictor.time_batch, found, predictor.tiling, predictor.batch_size)

    reserve = FIXED_RESERVE[0] + FIXED_RESERVE[1] * 60.0 * cfg.SOLVER.TIME_BUDGET
    if cfg.SYSTEM.INFER_AFTER_TRAIN and cfg.INFERENCE.IMAGE_NAME:
        reserve += cost(cfg.INFERENCE.IMAGE_NAME)
    periodic = (cost(split_names(cfg.DATASET.VAL_IMAGE_NAME)[0]), cfg.SOLVER.ITERATION_VAL) if validation else None
    started = time.time() if started is None else started
    deadline = started + 60.0 * cfg.SOLVER.TIME_BUDGET
    logger.info("time budget: %.1f min from the start of the command (%.0f s left); %.0f s kept for inference, "
                "decoding and reports%s", cfg.SOLVER.TIME_BUDGET, deadline - time.time(), reserve,
                f"; {periodic[0]:.0f} s per validation" if periodic else "")
    return BudgetHook(schedule, deadline, reserve, periodic, planned, cfg.SOLVER.ITERATION_STEP)
