"""Blockwise runs on a 2-worker local Dask cluster, and their faults: killed workers, a lost scheduler,
failing blocks, bad chunking, outputs from other runs, scheduler addresses."""
import os
import threading

import cloudpickle
import numpy as np
import pytest
import zarr

import connectomics.blockwise.store as store
from connectomics.blockwise import BlocksFailedError, ResumeError, SchedulerError, connect, postprocess_blockwise
from connectomics.config.validate import check_scheduler
from connectomics.fixtures.scenes import maps_from_labels, random_ellipsoids
from connectomics.postprocess import decode
from connectomics.storage import VolumeError, read_volume

SHAPE = (24, 96, 96)
BLOCK = (8, 32, 32)
PARAMS = dict(seed_threshold=0.9, contour_threshold=0.8, foreground_threshold=0.85, min_size=128, connectivity=6)


class KillOnce:
    """Stage wrapper: the first attempt of one block writes garbage into its output box, then its process dies."""

    def __init__(self, stage, index, flag):
        self.stage, self.index, self.flag = stage, index, flag

    def __call__(self, stage, fn):
        return fn if stage != self.stage else _Killer(fn, self.index, self.flag)


class _Killer:
    def __init__(self, fn, index, flag):
        self.fn, self.index, self.flag = fn, index, flag

    def __call__(self, index):
        if index == self.index and not os.path.exists(self.flag):
            open(self.flag, "w").close()
            grid, out = self.fn.keywords["grid"], self.fn.keywords["out_path"]
            box = tuple(slice(a, b) for a, b in grid.box(index))
            zarr.open_array(out, mode="r+")[box] = 4242  # a half-written block
            os._exit(1)
        return self.fn(index)


class FailBlock:
    """Stage wrapper: block ``index`` raises, on its first ``times`` attempts (counted in ``flag_dir``)."""

    def __init__(self, stage, index, flag_dir, times=10**6):
        self.stage, self.index, self.flag_dir, self.times = stage, index, flag_dir, times

    def __call__(self, stage, fn):
        if stage != self.stage:
            return fn

        def run(index):
            if index == self.index:
                n = len(os.listdir(self.flag_dir))
                if n < self.times:
                    open(os.path.join(self.flag_dir, str(n)), "w").close()
                    raise RuntimeError(f"injected failure {n + 1}")
            return fn(index)
        return run


class Slow:
    """Stage wrapper: every block of every stage takes at least ``seconds``."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __call__(self, stage, fn):
        def run(index):
            import time

            time.sleep(self.seconds)
            return fn(index)
        return run


cloudpickle.register_pickle_by_value(__import__(__name__))  # workers need not import this test module


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    rng = np.random.default_rng(3)
    probs = maps_from_labels(random_ellipsoids(SHAPE, 16, rng, radius_yx=(8, 24), radius_z=(3, 8)), rng)
    path = str(tmp_path_factory.mktemp("maps") / "maps.zarr")
    zarr.create_array(store=path, shape=probs.shape, chunks=(2,) + BLOCK, dtype="uint8")[...] = probs
    return probs, path, decode(probs, "bc_watershed", **PARAMS)


@pytest.fixture(scope="module")
def client():
    with connect("local", workers=2) as c:
        yield c


def run(path, out, **kwargs):
    kwargs.setdefault("halo", SHAPE)
    return postprocess_blockwise(path, out, "bc_watershed", PARAMS, block=BLOCK, **kwargs)


def test_two_worker_cluster_equals_single_machine(maps, client, tmp_path):
    probs, path, reference = maps
    assert len(client.scheduler_info()["workers"]) == 2
    out = str(tmp_path / "instances.h5")
    run(path, out, client=client)
    assert np.array_equal(read_volume(out), reference)
    assert not os.path.exists(tmp_path / ".instances.h5.blocks")  # work folder removed when done


def test_scheduler_address_and_the_command_line(maps, client, tmp_path):
    import subprocess
    import sys

    from connectomics.evaluation import load_scores
    from connectomics.postprocess.confidence import instance_confidence

    probs, path, reference = maps
    out = str(tmp_path / "by_address.zarr")
    with connect(client.scheduler.address) as remote:  # what a SLURM / Kubernetes user passes
        run(path, out, client=remote)
    assert np.array_equal(read_volume(out), reference)
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "postprocess.py")
    cli_out = str(tmp_path / "cli.h5")
    done = subprocess.run([sys.executable, script, "--scheduler", client.scheduler.address, "-i", path, "-o", cli_out,
                           "--opts", "BLOCKWISE.BLOCK_SIZE", "[8, 32, 32]", "BLOCKWISE.HALO", str(list(SHAPE)),
                           "POSTPROCESS.MIN_SIZE", "128"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert np.array_equal(read_volume(cli_out), reference)
    expected = instance_confidence(reference, probs)
    np.testing.assert_allclose(load_scores(str(tmp_path / "cli_scores.txt")), expected, atol=1e-6)
    zarr_out = str(tmp_path / "store.zarr")  # a zarr output: the score file is read back block by block
    done = subprocess.run([sys.executable, script, "--scheduler", "inprocess", "-i", path, "-o", zarr_out,
                           "--opts", "BLOCKWISE.BLOCK_SIZE", "[8, 32, 32]", "BLOCKWISE.HALO", str(list(SHAPE)),
                           "POSTPROCESS.MIN_SIZE", "128"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(load_scores(str(tmp_path / "store_scores.txt")), expected, atol=1e-6)
    done = subprocess.run([sys.executable, script, "--scheduler", "inprocess", "-i", path, "-o", cli_out,
                           "--opts", "POSTPROCESS.DECODER", "watershed_agglomerate"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "no blockwise form" in done.stderr


def test_worker_killed_mid_block_is_redone(maps, client, tmp_path):
    probs, path, reference = maps
    out = str(tmp_path / "instances.zarr")
    run(path, out, client=client, wrap=KillOnce("segment", (1, 1, 1), str(tmp_path / "killed")))
    assert os.path.exists(tmp_path / "killed")  # the worker did die in that block
    got = read_volume(out)
    assert not (got == 4242).any() and np.array_equal(got, reference)


def test_failing_block_is_retried_then_reported_and_resumed(maps, client, tmp_path):
    probs, path, reference = maps
    out = str(tmp_path / "instances.h5")
    flags = tmp_path / "flags"
    flags.mkdir()
    run(path, out, client=client, retries=2, wrap=FailBlock("seeds", (0, 1, 2), str(flags), times=2))
    assert len(os.listdir(flags)) == 2 and np.array_equal(read_volume(out), reference)  # third attempt passed

    out2, flags2 = str(tmp_path / "again.h5"), tmp_path / "flags2"
    flags2.mkdir()
    with pytest.raises(BlocksFailedError, match=r"1 of 27 blocks failed.*block \(0, 1, 2\).*injected failure"):
        run(path, out2, client=client, retries=1, wrap=FailBlock("seeds", (0, 1, 2), str(flags2)))
    assert not os.path.exists(out2)
    done = []
    run(path, out2, client=None, on_block_done=lambda index, n, total: done.append(index))
    assert done[0] == (0, 1, 2) and len(done) == 1 + 2 * 27  # the failed seed block, then stitch and segment
    assert np.array_equal(read_volume(out2), reference)


def test_lost_scheduler_is_a_clear_error_and_the_run_resumes(maps, tmp_path):
    from distributed import Client, LocalCluster

    probs, path, reference = maps
    out = str(tmp_path / "instances.h5")
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    lost = Client(cluster)

    def close_after_some(index, n_done, n_total):
        if n_done == 5:
            threading.Thread(target=cluster.close).start()

    with pytest.raises(SchedulerError, match="lost the Dask scheduler.*run the same command again"):
        run(path, out, client=lost, on_block_done=close_after_some, wrap=Slow(0.3))
    lost.close()
    assert not os.path.exists(out)
    resumed = []
    run(path, out, on_block_done=lambda index, n, total: resumed.append(n))
    assert resumed[0] > 1  # the blocks finished before the scheduler went away were not redone
    assert np.array_equal(read_volume(out), reference)


def test_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(SchedulerError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        with connect("tcp://127.0.0.1:9", timeout=2):
            pass
    with pytest.raises(ValueError, match="scheduler address"):
        check_scheduler("locl")


def test_killed_client_resumes_from_markers(maps, tmp_path):
    probs, path, reference = maps

    class Killed(Exception):
        pass

    def die(index, n_done, n_total):
        if n_done == 10:
            raise Killed

    out = str(tmp_path / "instances.h5")
    with pytest.raises(Killed):
        run(path, out, on_block_done=die)
    resumed = []
    run(path, out, on_block_done=lambda index, n, total: resumed.append(n))
    assert resumed[0] == 11 and np.array_equal(read_volume(out), reference)


def test_misaligned_chunks_round_the_block_and_huge_chunks_are_refused(maps, tmp_path, monkeypatch):
    probs, _, reference = maps
    path = str(tmp_path / "odd.zarr")
    zarr.create_array(store=path, shape=probs.shape, chunks=(2, 5, 30, 30), dtype="uint8")[...] = probs
    out = str(tmp_path / "instances.h5")
    run(path, out)
    assert np.array_equal(read_volume(out), reference)
    monkeypatch.setattr(store, "MAX_READ_CHUNK_MIB", 0.001)  # one chunk here is 9000 bytes
    with pytest.raises(VolumeError, match=r"chunks of \[2, 5, 30, 30\].*Rechunk.*convert_volume.py"):
        run(path, str(tmp_path / "other.h5"))


def test_output_from_other_settings_is_refused_unless_overwrite(maps, tmp_path):
    probs, path, reference = maps
    out = str(tmp_path / "instances.h5")
    run(path, out)
    run(path, out)  # same settings: already complete, nothing to do
    bigger = dict(PARAMS, min_size=3000)
    with pytest.raises(ResumeError, match="other settings.*min_size"):
        postprocess_blockwise(path, out, "bc_watershed", bigger, block=BLOCK)
    postprocess_blockwise(path, out, "bc_watershed", bigger, block=BLOCK, halo=SHAPE, overwrite=True)
    got = read_volume(out)
    assert got.max() < reference.max() and np.array_equal(got, decode(probs, "bc_watershed", **bigger))


def test_work_folder_from_other_settings_is_refused(maps, tmp_path):
    probs, path, reference = maps
    out = str(tmp_path / "instances.h5")

    def stop(index, n_done, n_total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(path, out, on_block_done=stop)
    with pytest.raises(ResumeError, match="work folder .* other settings"):
        run(path, out, halo=(1, 2, 2))
    run(path, out, halo=(1, 2, 2), overwrite=True)
    assert os.path.exists(out)


def test_bad_maps_are_refused(tmp_path):
    path = str(tmp_path / "bool.zarr")  # float maps are quantised per block (tests/test_blockwise_outputs.py)
    zarr.create_array(store=path, shape=(2, 4, 8, 8), chunks=(2, 4, 8, 8), dtype="bool")
    with pytest.raises(VolumeError, match="uint8"):
        run(path, str(tmp_path / "out.h5"))
    path = str(tmp_path / "one.zarr")
    zarr.create_array(store=path, shape=(4, 8, 8), chunks=(4, 8, 8), dtype="uint8")
    with pytest.raises(VolumeError, match=r"\(C, Z, Y, X\)"):
        run(path, str(tmp_path / "out.h5"))
