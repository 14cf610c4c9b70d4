"""Chunked, resumable, atomic HDF5 output of inference."""
import logging
import os

import h5py
import numpy as np
import pytest
import torch

from connectomics.inference import Predictor, ResumeError, infer_volume_to_file, predict_volume
from connectomics.storage import temporary_name

KW = dict(window=(4, 16, 16), stride=(2, 8, 8), pad=(1, 4, 4))
CHUNK = (6, 16, 20)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(1)
    return torch.nn.Conv3d(1, 2, 3, padding=1)


@pytest.fixture(scope="module")
def volume():
    return np.random.default_rng(2).integers(0, 256, (11, 37, 30), dtype=np.uint8)


@pytest.fixture()
def input_file(tmp_path, volume):
    path = tmp_path / "image.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=volume, chunks=(4, 16, 16))
    return f"{path}:raw"


class Stop(Exception):
    pass


def _stop_after(k):
    def hook(chunk, n_done, n_total):
        if n_done == k:
            raise Stop
    return hook


def test_file_output_equals_in_memory_prediction(tmp_path, model, volume, input_file):
    predictor = Predictor(model, **KW)
    out = tmp_path / "out" / "probs.h5"
    assert infer_volume_to_file(predictor, input_file, out, CHUNK) == out
    with h5py.File(out, "r") as f:
        assert list(f) == ["main"]
        dset = f["main"]
        assert dset.dtype == np.uint8 and dset.shape == (2,) + volume.shape
        assert dset.compression == "gzip" and dset.chunks is not None
        assert np.array_equal(dset[...], predict_volume(predictor, volume))
    assert not os.path.exists(temporary_name(out))


def test_killed_run_resumes_at_the_first_unfinished_chunk(tmp_path, model, input_file):
    predictor = Predictor(model, **KW)
    reference = tmp_path / "reference.h5"
    infer_volume_to_file(predictor, input_file, reference, CHUNK, compression="lzf")
    out = tmp_path / "probs.h5"
    with pytest.raises(Stop):
        infer_volume_to_file(predictor, input_file, out, CHUNK, compression="lzf", on_chunk_done=_stop_after(3))
    assert not out.exists() and os.path.exists(temporary_name(out))
    with h5py.File(temporary_name(out), "r") as f:
        done = f["done"][...].astype(bool)
    tiling = predictor.tiling((11, 37, 30), CHUNK)
    # writes run one chunk behind on a thread: the chunks after the 3rd may be on disk too, but always
    # a prefix of the chunk order, and every chunk marked done holds its final values (checked below)
    n = int(done.sum())
    assert 3 <= n < tiling.num_chunks
    assert [bool(done[i]) for i in tiling.chunk_indices()] == [True] * n + [False] * (tiling.num_chunks - n)
    seen = []
    infer_volume_to_file(predictor, input_file, out, CHUNK, compression="lzf",
                         on_chunk_done=lambda chunk, n, total: seen.append((chunk.index, n, total)))
    assert [k for _, k, _ in seen] == list(range(n + 1, tiling.num_chunks + 1))
    assert seen[0][0] == tiling.chunk_indices()[n]
    with h5py.File(out, "r") as a, h5py.File(reference, "r") as b:
        assert np.array_equal(a["main"][...], b["main"][...])
    assert not os.path.exists(temporary_name(out))


def test_partial_file_with_other_settings_is_refused_unless_overwrite(tmp_path, model, input_file):
    out = tmp_path / "probs.h5"
    with pytest.raises(Stop):
        infer_volume_to_file(Predictor(model, **KW), input_file, out, CHUNK, on_chunk_done=_stop_after(1))
    other = Predictor(model, **{**KW, "stride": (2, 16, 16)})
    with pytest.raises(ResumeError, match=r"stride: \[2, 8, 8\] -> \[2, 16, 16\].*overwrite=True"):
        infer_volume_to_file(other, input_file, out, CHUNK)
    with pytest.raises(ResumeError, match="chunk_size"):
        infer_volume_to_file(Predictor(model, **KW), input_file, out, (4, 16, 16))
    infer_volume_to_file(other, input_file, out, CHUNK, overwrite=True)
    with h5py.File(out, "r") as f:
        assert np.array_equal(f["main"][...], predict_volume(other, _read(input_file)))


def _read(spec):
    path, key = spec.rsplit(":", 1)
    with h5py.File(path, "r") as f:
        return f[key][...]


def test_complete_output_is_reused_or_refused(tmp_path, model, input_file):
    out = tmp_path / "probs.h5"
    infer_volume_to_file(Predictor(model, **KW), input_file, out, CHUNK)
    calls = []
    infer_volume_to_file(Predictor(model, **KW), input_file, out, CHUNK, on_chunk_done=lambda *a: calls.append(a))
    assert calls == []
    torch.manual_seed(5)
    with pytest.raises(ResumeError, match=f"{out} exists and was made with other settings.*model"):
        infer_volume_to_file(Predictor(torch.nn.Conv3d(1, 2, 3, padding=1), **KW), input_file, out, CHUNK)


def test_output_made_in_eval_mode_is_not_reused_with_batch_statistics(tmp_path, input_file):
    """INFERENCE.DO_EVAL False (batch statistics) changes every value: the eval-mode file is refused."""
    torch.manual_seed(3)
    bn_model = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, padding=1), torch.nn.BatchNorm3d(2))
    out = tmp_path / "probs.h5"
    infer_volume_to_file(Predictor(bn_model, **KW), input_file, out, CHUNK)
    with pytest.raises(ResumeError, match=r"eval_mode: None -> False.*--overwrite"):
        infer_volume_to_file(Predictor(bn_model, **KW, eval_mode=False), input_file, out, CHUNK)


def test_unreadable_partial_file_is_restarted(tmp_path, model, volume, input_file, caplog):
    out = tmp_path / "probs.h5"
    with open(temporary_name(out), "wb") as f:
        f.write(b"not an hdf5 file")
    with caplog.at_level(logging.WARNING):
        infer_volume_to_file(Predictor(model, **KW), input_file, out, CHUNK)
    assert "unreadable" in caplog.text
    with h5py.File(out, "r") as f:
        assert np.array_equal(f["main"][...], predict_volume(Predictor(model, **KW), volume))


class RecordingVolume:
    """An array-like that records every read (shape, dtype, slicing only)."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.reads = array, array.shape, array.dtype, []

    def __getitem__(self, index):
        block = self.array[index]
        self.reads.append(block.size)
        return block


def test_only_read_boxes_are_read(tmp_path, model, volume):
    recording = RecordingVolume(volume)
    predictor = Predictor(model, **KW)
    infer_volume_to_file(predictor, recording, tmp_path / "probs.h5", CHUNK)
    tiling = predictor.tiling(volume.shape, CHUNK)
    assert len(recording.reads) == tiling.num_chunks
    biggest = max(np.prod([min(b, n) - max(a, 0) for (a, b), n in zip(c.read, volume.shape)])
                  for c in tiling.chunks())
    assert max(recording.reads) <= biggest < volume.size


def test_bad_arguments(tmp_path, model, volume):
    with pytest.raises(ValueError, match="compression must be 'gzip' or 'lzf'"):
        infer_volume_to_file(Predictor(model, **KW), volume, tmp_path / "p.h5", CHUNK, compression="zstd")
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        infer_volume_to_file(Predictor(model, **KW), str(tmp_path / "missing.h5"), tmp_path / "p.h5", CHUNK)


def test_model_fingerprint_sees_weights_and_buffers():
    from connectomics.inference.writer import model_fingerprint

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 1), torch.nn.BatchNorm3d(2))
    before = model_fingerprint(model)
    assert before == model_fingerprint(model)
    model[1].num_batches_tracked += 1  # a 0-d buffer
    assert model_fingerprint(model) != before


def test_run_killed_between_the_last_chunk_and_the_rename_finishes(tmp_path, model, input_file, monkeypatch):
    out = tmp_path / "probs.h5"

    def killed(src, dst):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", killed)
        with pytest.raises(KeyboardInterrupt):
            infer_volume_to_file(Predictor(model, **KW), input_file, out, CHUNK)
    assert not out.exists() and os.path.exists(temporary_name(out))
    calls = []
    infer_volume_to_file(Predictor(model, **KW), input_file, out, CHUNK, on_chunk_done=lambda *a: calls.append(a))
    assert calls == []
    with h5py.File(out, "r") as f:
        assert list(f) == ["main"] and np.array_equal(f["main"][...], predict_volume(Predictor(model, **KW),
                                                                                      _read(input_file)))


def test_final_name_holding_something_else_is_refused(tmp_path, model, input_file):
    out = tmp_path / "probs.h5"
    out.write_bytes(b"something else")
    with pytest.raises(ResumeError, match="not a readable HDF5 file.*overwrite=True"):
        infer_volume_to_file(Predictor(model, **KW), input_file, out, CHUNK)
    infer_volume_to_file(Predictor(model, **KW), input_file, out, CHUNK, overwrite=True)
    with h5py.File(out, "r") as f:
        assert f["main"].shape == (2, 11, 37, 30)


def test_float_input_outside_0_1_names_the_file(tmp_path, model, volume):
    from connectomics.storage import VolumeError

    path = tmp_path / "float255.h5"
    with h5py.File(path, "w") as f:
        f["raw"] = volume.astype(np.float32)  # 0..255 stored as float: not a [0, 1] image
    with pytest.raises(VolumeError, match=r"float255.h5:raw: float inference input must lie in \[0, 1\]"):
        infer_volume_to_file(Predictor(model, **KW), f"{path}:raw", tmp_path / "probs.h5", CHUNK)
    assert not (tmp_path / "probs.h5").exists()


class _FailsAtChunk(Predictor):
    """A Predictor whose ``k``-th chunk (1-based) raises Stop, as a crash mid-volume would."""

    def __init__(self, k, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.k, self.calls = k, 0

    def predict_chunk(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.k:
            raise Stop
        return super().predict_chunk(*args, **kwargs)


def test_crash_while_a_chunk_is_being_written_keeps_the_written_chunks(tmp_path, model, input_file):
    # the forward of a later chunk fails while the background writer may still be writing an
    # earlier one: the run stops cleanly (no hang), and a rerun completes to the reference values
    predictor = Predictor(model, **KW)
    out = tmp_path / "probs.h5"
    with pytest.raises(Stop):
        infer_volume_to_file(_FailsAtChunk(3, model, **KW), input_file, out, CHUNK)
    with h5py.File(temporary_name(out), "r") as f:
        assert int(f["done"][...].sum()) == 2  # both finished chunks reached the disk before the error surfaced
    infer_volume_to_file(predictor, input_file, out, CHUNK)
    with h5py.File(out, "r") as f:
        assert np.array_equal(f["main"][...], predict_volume(predictor, _read(input_file)))


def test_writer_thread_errors_reach_the_caller(tmp_path):
    from connectomics.inference.tiling import Tiling
    from connectomics.inference.writer import ChunkWriter
    from connectomics.storage.partial import open_partial

    tiling = Tiling((4, 8, 8), (4, 8, 8), (4, 8, 8), (0, 0, 0), (4, 8, 8))
    chunk = tiling.chunk(tiling.chunk_indices()[0])
    partial = open_partial(str(tmp_path / "probs.h5"), {"run": 1}, tiling.volume_shape, tiling.chunk_size,
                           tiling.grid_shape, compression="lzf")
    writer = ChunkWriter(partial)
    writer.submit(np.zeros((2, 4, 8, 8), np.uint8), chunk)
    writer.submit(np.zeros((3, 4, 8, 8), np.uint8), chunk)  # other channel count: the thread fails
    with pytest.raises(ResumeError, match="2 channels, the model gives 3"):
        writer.close()
    writer.join()  # cleanup after the error raises nothing
    assert int(partial.f["done"][...].sum()) == 1
    partial.close()


def test_zarr_output_resumes_and_equals_in_memory_prediction(tmp_path, model, volume, input_file):
    import zarr

    from connectomics.storage import stored_settings

    predictor = Predictor(model, **KW)
    out = str(tmp_path / "probs.zarr")
    with pytest.raises(Stop):
        infer_volume_to_file(predictor, input_file, out, CHUNK, on_chunk_done=_stop_after(3))
    assert not os.path.exists(out) and os.path.isdir(temporary_name(out))
    seen = []
    infer_volume_to_file(predictor, input_file, out, CHUNK, on_chunk_done=lambda c, n, t: seen.append(n))
    assert 4 <= seen[0] == seen[-1] - len(seen) + 1  # resumed after the chunks already on disk
    array = zarr.open_array(out, mode="r")
    assert array.dtype == np.uint8 and array.shape == (2,) + volume.shape
    assert np.array_equal(array[...], predict_volume(predictor, volume))
    assert not os.path.exists(temporary_name(out)) and not os.path.exists(temporary_name(out) + ".blocks")
    assert stored_settings(out)[1]["chunk_size"] == list(CHUNK)
    other = Predictor(model, **dict(KW, stride=(2, 16, 16)))
    with pytest.raises(ResumeError, match="exists and was made with other settings"):
        infer_volume_to_file(other, input_file, out, CHUNK)
