#!/usr/bin/env python
"""Side by side with BiaPy: the same train split, the same time budget, the same machine, our evaluator.

    python benchmarks/bench_peer_biapy.py --data ../shared/data/cdeep3m_mito [--budget 30]
        [--venv ~/.cache/connectomics/biapy-3.7.1] [--workdir /tmp/bench_biapy] [--ours DIR]

1. BiaPy 3.7.1 is installed in its own virtual environment (``--venv``) with the CPU build of
   torch 2.13.0 and PyPI's torchvision, whose Linux wheel is built against CUDA torch and does not
   import beside a CPU torch (``RuntimeError: operator torchvision::nms does not exist``). BiaPy runs
   through a small runner that first defines the two operator schemas torchvision's Python side
   registers fake kernels for (``torchvision::nms`` and ``::qnms``; its compiled ops are not
   loaded and BiaPy's instance workflow never calls them), then calls ``biapy.main()``.
2. The data (``image_train.h5``, ``label_train.h5``, ``image_val.h5``, ``label_val.h5``) become the
   TIFF folders BiaPy reads.
3. BiaPy's 3D instance-segmentation workflow (foreground + contour channels ``F``, ``C``, its
   marker-controlled watershed) with the settings of its 3D instance template (residual U-Net
   [36, 48, 64] with z pooling, AdamW 1e-4, one-cycle schedule, batch 2, flips and rotations). Changed
   because of the 2-core budget, and only these: the patch (8 x 64 x 64: the template's 20 x 128 x 128
   runs at about 12 s per step here), the epochs (as many as fit the budget, from a timed first
   epoch's step time; at least 1) and the workers (2).
4. Scored with our evaluator, ranked by size (the challenge's way) and by confidence (mean
   foreground probability of BiaPy's own F channel); and BiaPy's probability maps decoded with our
   decoder (the template's thresholds), which separates the model from the post-processing.
5. Ours: the one command (``configs/Finetune/Finetune-BC.yaml`` with the same budget), or the
   run folder given as ``--ours`` (a finished run of that command).

Prints every row (AP-75 by size / by confidence, AP-50, TP / FP at IoU 0.75, train and inference
wall time, peak RSS) and our ratio. The CPU and its features are printed first.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

BIAPY = "biapy==3.7.1"
TORCH = "torch==2.13.0"
PATCH = (8, 64, 64)

RUNNER = '''"""BiaPy beside a CPU torch: define the torchvision operator schemas its Python side needs."""
import sys

import torch

try:
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
except RuntimeError:  # a torchvision whose extension loads defines them itself
    pass

import biapy  # noqa: E402

sys.exit(biapy.main())
'''


def ensure_venv(venv):
    """A virtual environment with BiaPy and a CPU torch; the runner script in it. Returns its python."""
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    ok = subprocess.run([python, "-c", "import biapy"], capture_output=True).returncode == 0
    if not ok:
        subprocess.run([python, "-m", "pip", "install", "-q", TORCH, BIAPY], check=True)
    with open(os.path.join(venv, "run_biapy.py"), "w", encoding="utf-8") as f:
        f.write(RUNNER)
    return python


def write_tiffs(data, folder):
    """CDeep3M h5 volumes -> BiaPy's TIFF folders (train/x, train/y, test/x, test/y)."""
    import tifffile

    from connectomics.storage import read_volume

    for split, name in (("train", "train"), ("test", "val")):
        for kind, file, dtype in (("x", "image", np.uint8), ("y", "label", np.uint16)):
            out = os.path.join(folder, split, kind, f"{name}.tif")
            if not os.path.exists(out):
                os.makedirs(os.path.dirname(out), exist_ok=True)
                tifffile.imwrite(out, read_volume(os.path.join(data, f"{file}_{name}.h5:main")).astype(dtype))
    return folder


def biapy_config(tiffs, epochs, workers=2):
    """BiaPy's 3D instance template with the budget's changes (patch, epochs, workers)."""
    z, y, x = PATCH
    return f"""SYSTEM:
  NUM_CPUS: 2
  NUM_WORKERS: {workers}
  SEED: 0
PROBLEM:
  TYPE: INSTANCE_SEG
  NDIM: 3D
  INSTANCE_SEG:
    DATA_CHANNELS: ["F", "C"]
DATA:
  PATCH_SIZE: ({z}, {y}, {x}, 1)
  REFLECT_TO_COMPLETE_SHAPE: True
  TRAIN:
    PATH: {tiffs}/train/x
    GT_PATH: {tiffs}/train/y
    IN_MEMORY: True
  VAL:
    FROM_TRAIN: True
    SPLIT_TRAIN: 0.1
  TEST:
    PATH: {tiffs}/test/x
    GT_PATH: {tiffs}/test/y
    IN_MEMORY: True
    LOAD_GT: True
    PADDING: (2, 8, 8)
AUGMENTOR:
  ENABLE: True
  RANDOM_ROT: True
  VFLIP: True
  HFLIP: True
  ZFLIP: True
MODEL:
  ARCHITECTURE: resunet
  FEATURE_MAPS: [36, 48, 64]
  Z_DOWN: [1, 1]
TRAIN:
  ENABLE: True
  OPTIMIZER: ADAMW
  LR: 1.E-4
  BATCH_SIZE: 2
  EPOCHS: {epochs}
  PATIENCE: 20
  LR_SCHEDULER:
    NAME: onecycle
TEST:
  ENABLE: True
  AUGMENTATION: False
  FULL_IMG: False
  MATCHING_STATS: True
"""


class PeakRSS:
    """Peak resident memory (bytes) of a process and its children, sampled every 0.2 s."""

    def __init__(self, pid):
        import psutil

        self.process, self.peak, self.done = psutil.Process(pid), 0, False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        import psutil

        while not self.done:
            try:
                total = sum(p.memory_info().rss for p in [self.process] + self.process.children(recursive=True))
            except psutil.Error:
                total = 0
            self.peak = max(self.peak, total)
            time.sleep(0.2)

    def stop(self):
        self.done = True
        self.thread.join()
        return self.peak


def run(cmd, log, env=None, cwd=None, stop_when=None):
    """Run ``cmd`` with its output in ``log``; returns (seconds, peak RSS bytes, return code).

    ``stop_when(log_text)``: end the process (SIGTERM) as soon as it returns True.
    """
    started = time.time()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        meter = PeakRSS(proc.pid)
        while proc.poll() is None:
            time.sleep(1.0)
            if stop_when is not None and stop_when(open(log, encoding="utf-8", errors="replace").read()):
                proc.terminate()
                proc.wait()
                break
    return time.time() - started, meter.stop(), proc.returncode


def step_seconds(log_text):
    """BiaPy's iteration time and steps per epoch from its progress lines (None until 10 steps are logged)."""
    found = re.findall(r"\[\s*(\d+)/(\d+)\].*iter-time: ([0-9.]+)", log_text)
    if len(found) < 2 or int(found[-1][0]) < 10:
        return None
    return float(np.median([float(t) for _, _, t in found[1:]])), int(found[-1][1])


def score(gt, labels, scores=None):
    from connectomics.evaluation import evaluate_volumes

    return evaluate_volumes(gt, labels, scores=scores).summary


def biapy_rows(python, venv, tiffs, gt, budget_s, work):
    """Calibrate, train and test BiaPy; score its instances and its maps with our decoder."""
    import tifffile

    from connectomics.postprocess import decode
    from connectomics.postprocess.confidence import instance_confidence

    runner = os.path.join(venv, "run_biapy.py")
    env = dict(os.environ, OMP_NUM_THREADS="2")
    config = os.path.join(work, "calibrate.yaml")
    with open(config, "w", encoding="utf-8") as f:
        f.write(biapy_config(tiffs, 1))
    started = time.time()
    run([python, runner, "--config", config, "--result_dir", os.path.join(work, "calibrate"), "--name", "cal"],
        os.path.join(work, "calibrate.log"), env=env, stop_when=lambda text: step_seconds(text) is not None)
    step, steps_per_epoch = step_seconds(open(os.path.join(work, "calibrate.log"), encoding="utf-8").read())
    calibration = time.time() - started
    test_estimate = 0.25 * budget_s  # BiaPy's patch-wise test of the 10 x 1024 x 1024 val volume
    epochs = max(1, int((budget_s - calibration - test_estimate) // (step * steps_per_epoch)))
    print(f"BiaPy: {step:.2f} s per step, {steps_per_epoch} steps per epoch -> {epochs} epoch(s) "
          f"(calibration {calibration:.0f} s, counted in its budget)", flush=True)
    config = os.path.join(work, "run.yaml")
    with open(config, "w", encoding="utf-8") as f:
        f.write(biapy_config(tiffs, epochs))
    seconds, peak, code = run([python, runner, "--config", config, "--result_dir", os.path.join(work, "run"),
                               "--name", "run"], os.path.join(work, "run.log"), env=env)
    if code:
        raise RuntimeError(f"BiaPy failed (exit {code}); see {os.path.join(work, 'run.log')}")
    log = open(os.path.join(work, "run.log"), encoding="utf-8").read()
    train_s = _hms(re.search(r"Train time \(s\): ([0-9:]+)", log))
    result = os.path.join(work, "run", "run", "results", "run_1")
    instances = tifffile.imread(os.path.join(result, "per_image_instances", "val.tif")).astype(np.uint32)
    maps = tifffile.imread(os.path.join(result, "per_image", "val.tif"))  # (Z, C, Y, X) float, F and C
    maps = np.clip(np.rint(np.moveaxis(maps, 1, 0)[:2] * 255), 0, 255).astype(np.uint8)
    times = dict(total=seconds + calibration, train=train_s, peak=peak)
    confidence = instance_confidence(instances, maps)
    ours_decode = decode(maps, "bc_watershed", foreground_threshold=0.5, seed_threshold=0.8, contour_threshold=0.9,
                         min_size=1500)
    return [("BiaPy (its model, its watershed)", score(gt, instances), score(gt, instances, confidence), times),
            ("BiaPy maps, our decoder", score(gt, ours_decode),
             score(gt, ours_decode, instance_confidence(ours_decode, maps)), times)]


def _hms(match):
    if not match:
        return float("nan")
    parts = [int(p) for p in match.group(1).split(":")]
    return float(sum(p * 60 ** i for i, p in enumerate(reversed(parts))))


def ours_row(data, budget_min, work, folder=None):
    """Our one command with the same budget (or the finished run in ``folder``)."""
    from connectomics.storage import parse_spec  # noqa: F401 (the package must import)

    gt = os.path.join(data, "label_val.h5:main")
    times = {}
    if folder is None:
        folder = os.path.join(work, "ours")
        env = dict(os.environ, TRAIN_IMAGE=os.path.join(data, "image_train.h5:main"),
                   TRAIN_LABEL=os.path.join(data, "label_train.h5:main"),
                   TEST_IMAGE=os.path.join(data, "image_val.h5:main"), TEST_LABEL=gt)
        cmd = [sys.executable, os.path.join(REPO, "scripts", "main.py"), "--config-file",
               os.path.join(REPO, "configs", "Finetune", "Finetune-BC.yaml"), "--opts", "SOLVER.TIME_BUDGET",
               str(budget_min), "DATASET.OUTPUT_PATH", folder]
        seconds, peak, code = run(cmd, os.path.join(work, "ours.log"), env=env)
        if code:
            raise RuntimeError(f"our run failed (exit {code}); see {os.path.join(work, 'ours.log')}")
        times = dict(total=seconds, peak=peak)
    instances = os.path.join(folder, "inference", "instances.h5")
    scores = os.path.join(folder, "inference", "instances_scores.txt")
    return ("ours (configs/Finetune, one command)", score(gt, instances), score(gt, instances, scores), times)


def print_table(rows, cpu, budget):
    print(f"\nCDeep3M val split, {budget:g}-minute budget on {cpu}")
    print(f"{'run':40s}{'AP-75 size':>11s}{'AP-75 conf':>11s}{'AP-50':>7s}{'TP':>6s}{'FP':>7s}"
          f"{'total s':>9s}{'train s':>9s}{'peak GiB':>9s}")

    def cell(value, form):  # '-' where a finished run was given (its times are in its own log)
        return f"{'-':>9s}" if value is None else format(value, form)

    for name, by_size, by_conf, t in rows:
        peak = t["peak"] / 2**30 if t.get("peak") else None
        print(f"{name:40s}{by_size['AP75']:>11.3f}{by_conf['AP75']:>11.3f}{by_size['AP50']:>7.3f}"
              f"{by_size['tp75']:>6d}{by_size['fp75']:>7d}{cell(t.get('total'), '>9.0f')}"
              f"{cell(t.get('train'), '>9.0f')}{cell(peak, '>9.2f')}")
    ours = rows[-1]

    def ratio(a, b):
        return a / max(b, 1e-9)

    for name, by_size, by_conf, _ in rows[:-1]:
        print(f"ours / {name}: AP-75 by size x{ratio(ours[1]['AP75'], by_size['AP75']):.2f}, by confidence "
              f"x{ratio(ours[2]['AP75'], by_conf['AP75']):.2f}, AP-50 x{ratio(ours[1]['AP50'], by_size['AP50']):.2f}")


def main(argv=None):
    from connectomics.utils.cpu import cpu_description

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder of image_train.h5, label_train.h5, image_val.h5, "
                                                      "label_val.h5 (dataset 'main')")
    parser.add_argument("--budget", type=float, default=30.0, help="minutes for each tool, inference included")
    parser.add_argument("--venv", default=os.path.expanduser("~/.cache/connectomics/biapy-3.7.1"))
    parser.add_argument("--workdir", default="/tmp/bench_biapy")
    parser.add_argument("--ours", default=None, help="a finished run folder of our command (skips running it)")
    parser.add_argument("--skip-biapy", action="store_true", help="only our row (e.g. to rerun ours)")
    args = parser.parse_args(argv)
    cpu = cpu_description()
    print(f"CPU: {cpu}", flush=True)
    os.makedirs(args.workdir, exist_ok=True)
    data = os.path.abspath(args.data)
    rows = []
    if not args.skip_biapy:
        python = ensure_venv(args.venv)
        tiffs = write_tiffs(data, os.path.join(args.workdir, "tiffs"))
        work = os.path.join(args.workdir, "biapy")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        rows += biapy_rows(python, args.venv, tiffs, os.path.join(data, "label_val.h5:main"), 60 * args.budget, work)
    rows.append(ours_row(data, args.budget, args.workdir, args.ours))
    print_table(rows, cpu, args.budget)
    with open(os.path.join(args.workdir, "rows.json"), "w", encoding="utf-8") as f:
        json.dump([{"run": r[0], "by_size": r[1], "by_confidence": r[2], "times": r[3]} for r in rows], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
