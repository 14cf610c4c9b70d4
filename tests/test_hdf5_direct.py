"""Whole HDF5 datasets read / written with gzip chunks (de)compressed on threads: same arrays as h5py."""
import h5py
import numpy as np
import pytest

from connectomics.storage import read_volume
from connectomics.storage.hdf5_direct import _gzip_level, read_all, write_all


@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.float32, np.int64])
@pytest.mark.parametrize("threads", [1, 3])
def test_round_trip_with_edge_chunks_equals_h5py(tmp_path, dtype, threads):
    data = np.random.default_rng(0).integers(0, 200, (2, 13, 37, 50)).astype(dtype)
    path = str(tmp_path / "a.h5")
    with h5py.File(path, "w") as f:
        dset = f.create_dataset("main", shape=data.shape, dtype=dtype, chunks=(1, 4, 16, 16), compression="gzip",
                                compression_opts=1)
        assert _gzip_level(dset) == 1
        write_all(dset, data, threads)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["main"][...], data)  # h5py reads what the threads wrote
        got = read_all(f["main"], threads)
    assert got.dtype == data.dtype
    np.testing.assert_array_equal(got, data)


def test_unwritten_chunks_read_as_the_fill_value(tmp_path):
    path = str(tmp_path / "a.h5")
    with h5py.File(path, "w") as f:
        dset = f.create_dataset("main", shape=(8, 32, 32), dtype=np.uint16, chunks=(4, 16, 16), compression="gzip",
                                fillvalue=7)
        dset[:4, :16, :16] = 3
    with h5py.File(path, "r") as f:
        expected, got = f["main"][...], read_all(f["main"], 2)
    assert (got == 7).sum() == expected.size - 4 * 16 * 16
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(read_volume(path), expected)


@pytest.mark.parametrize("options", [dict(compression="gzip", shuffle=True), dict(compression="lzf"), {},
                                     dict(compression="gzip", dtype=">u2")])
def test_other_layouts_go_through_h5py(tmp_path, options):
    data = np.arange(6 * 20 * 20, dtype=np.uint16).reshape(6, 20, 20)
    options = dict(options)
    dtype = options.pop("dtype", np.uint16)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        dset = f.create_dataset("main", shape=data.shape, dtype=dtype, chunks=(2, 8, 8) if options else None,
                                **options)
        assert _gzip_level(dset) is None
        write_all(dset, data)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        np.testing.assert_array_equal(read_all(f["main"]), data)


def test_write_all_to_other_arrays_assigns(tmp_path):
    out = np.zeros((3, 4), np.int32)
    write_all(out, np.ones((3, 4)))
    assert out.sum() == 12
