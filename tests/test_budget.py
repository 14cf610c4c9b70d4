"""SOLVER.TIME_BUDGET: the iteration count fitted to a wall-clock budget, kept by a resumed run."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from test_engine import MAIN, REPO, run_main, tiny_config

from connectomics.engine.budget import CALIBRATION, BudgetHook, plan_total


def test_plan_fits_steps_and_validations_into_the_time_left():
    assert plan_total(now=0, deadline=110, seconds_per_step=1.0, reserve=10) == 100
    # a validation of 5 s every 10 iterations: 1.5 s per iteration on average
    assert plan_total(0, 110, 1.0, 10, validation_seconds=5, validation_period=10) == 66
    assert plan_total(0, 110, 1.0, 10, step=4) == 100 and plan_total(0, 111, 1.0, 10, step=3) == 99
    assert plan_total(0, 5, 1.0, 10, step=2) == 2  # no time left: the smallest step, the guard stops it


class FakeTrainer:
    def __init__(self, start=0, max_iter=10**8):
        self.iter, self.max_iter = start, max_iter


def test_hook_plans_after_calibration_replans_once_and_guards_the_deadline():
    clock = {"t": 0.0}
    schedule = lambda it: 1.0  # noqa: E731 (a function with a 'total' attribute, as the cosine factor)
    schedule.total = 10**8
    hook = BudgetHook(schedule, deadline=1000.0, reserve=100.0, clock=lambda: clock["t"])
    trainer = FakeTrainer()
    hook.before_train(trainer)
    for _ in range(CALIBRATION):  # 2 s per step
        clock["t"] += 2.0
        trainer.iter += 1
        hook.after_step(trainer)
    # at t = 40: (1000 - 40 - 100) / 2 = 430 more
    assert trainer.max_iter == schedule.total == CALIBRATION + 430 == hook.state()["planned_total"]
    while trainer.iter < trainer.max_iter / 3:  # the machine got faster: 1 s per step
        clock["t"] += 1.0
        trainer.iter += 1
        hook.after_step(trainer)
    assert trainer.max_iter > CALIBRATION + 430 and hook.replanned
    replanned = trainer.max_iter
    clock["t"] = 950.0  # past the training deadline (1000 - 100): stop now, with a checkpoint
    trainer.iter += 1
    hook.after_step(trainer)
    assert trainer.max_iter == trainer.iter < replanned and hook.state()["planned_total"] == trainer.iter
    resumed = BudgetHook(schedule, deadline=10.0, reserve=0.0, planned=500, clock=lambda: 0.0)
    trainer = FakeTrainer(start=200)
    resumed.before_train(trainer)
    assert trainer.max_iter == schedule.total == 500  # the plan it started with, whatever the clock says


def test_a_tiny_budget_ends_the_command_on_time(tmp_path):
    config = tiny_config(tmp_path, total=6, save=1000)
    budget = 0.4  # minutes, inference and scoring included
    started = time.time()
    result = run_main("--config-file", config, "--opts", "SOLVER.TIME_BUDGET", str(budget), timeout=300)
    elapsed = time.time() - started
    assert result.returncode == 0, result.stderr[-3000:]
    assert "time budget: planned:" in result.stderr and "AP-75" in result.stdout
    assert elapsed <= 60 * budget + 10, elapsed  # + the interpreter start before the clock starts
    folder = tmp_path / "outputs" / "Synthetic-BC"
    final = max(folder.glob("checkpoint_*.pth.tar"))
    state = torch.load(final, weights_only=False)
    assert state["budget"]["planned_total"] == state["iteration"] > 6  # ITERATION_TOTAL is not the length


def test_a_resumed_run_keeps_the_plan_it_started_with(tmp_path):
    config = tiny_config(tmp_path, total=6, save=1000)
    opts = ["--opts", "SOLVER.TIME_BUDGET", "0.5", "SYSTEM.INFER_AFTER_TRAIN", "False"]
    folder = tmp_path / "outputs" / "Synthetic-BC"
    proc = subprocess.Popen([sys.executable, MAIN, "--config-file", config, *opts], cwd=REPO, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        log = folder / "log.txt"
        if log.exists() and "planned again" in log.read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    stopped = max(folder.glob("checkpoint_*.pth.tar"))
    plan = torch.load(stopped, weights_only=False)["budget"]["planned_total"]
    assert torch.load(stopped, weights_only=False)["iteration"] < plan
    resumed = run_main("--config-file", config, "--opts", "SOLVER.TIME_BUDGET", "5", "SYSTEM.INFER_AFTER_TRAIN",
                       "False", timeout=300)  # another budget: the run keeps its own
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed run keeps its plan" in resumed.stderr
    final = max(folder.glob("checkpoint_*.pth.tar"))
    assert final.name == f"checkpoint_{plan:06d}.pth.tar"


@pytest.mark.parametrize("opts, message", [
    (["SOLVER.TIME_BUDGET", "-1"], "SOLVER.TIME_BUDGET"),
    (["SOLVER.TIME_BUDGET", "10", "SOLVER.LR_SCHEDULER_NAME", "MultiStepLR"], "WarmupCosineLR"),
])
def test_bad_budgets_are_config_errors(opts, message):
    from connectomics.config import ConfigError, load_cfg

    with pytest.raises(ConfigError, match=message):
        load_cfg(None, opts)
