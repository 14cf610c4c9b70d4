"""Work stores of a blockwise run: whole-chunk writes, any-box reads, zeros where never written."""
import os

import numpy as np
import pytest

from connectomics.storage.work_store import create_work_array, open_work_array


def test_block_writes_and_halo_reads_round_trip(tmp_path):
    shape, block = (20, 70, 90), (10, 35, 45)  # the last chunks of an axis are shorter
    path = create_work_array(str(tmp_path / "seeds"), shape, block, np.uint32, {"run": 1})
    work = open_work_array(path)
    assert work.shape == shape and work.dtype == np.uint32 and all(b % c == 0 for b, c in zip(block, work.chunks))
    data = np.random.default_rng(0).integers(0, 2**32 - 1, shape, dtype=np.uint32)
    for z in (0, 10):
        for y in (0, 35):
            for x in (0, 45):
                work[z:z + 10, y:y + 35, x:x + 45] = data[z:z + 10, y:y + 35, x:x + 45]
    np.testing.assert_array_equal(open_work_array(path)[...], data)
    np.testing.assert_array_equal(work[3:17, 30:41, 40:90], data[3:17, 30:41, 40:90])  # across chunks


def test_unwritten_chunks_read_as_zeros_and_writes_must_cover_chunks(tmp_path):
    path = create_work_array(str(tmp_path / "fg"), (1, 8, 32, 32), (1, 8, 16, 16), np.uint8, {})
    work = open_work_array(path)
    work[:, :, :16, :16] = 7
    got = work[:, 2:6, 10:20, 10:20]
    assert got.shape == (1, 4, 10, 10) and got[0, 0, 0, 0] == 7 and got[0, 0, -1, -1] == 0
    with pytest.raises(ValueError, match="whole chunks"):
        work[:, :, 1:16, :16] = 1
    with pytest.raises(IndexError, match="step-1"):
        work[:, :, ::2]


def test_reopened_with_its_settings_kept_else_made_anew(tmp_path):
    path = str(tmp_path / "segment")
    create_work_array(path, (4, 8, 8), (4, 8, 8), np.uint32, {"input_id": "a"})
    open_work_array(path)[...] = 5
    create_work_array(path, (4, 8, 8), (4, 8, 8), np.uint32, {"input_id": "a"})  # a resumed run: kept
    assert open_work_array(path)[...].min() == 5
    create_work_array(path, (4, 8, 8), (4, 8, 8), np.uint32, {"input_id": "b"})  # other maps: empty again
    assert open_work_array(path)[...].max() == 0
    assert not [name for name in os.listdir(path) if name.endswith(".tmp")]
