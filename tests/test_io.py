"""Volume I/O: HDF5 round trips and keys, TIFF stacks, JSON tiles, atomic writes, errors."""
import json
import os

import h5py
import numpy as np
import pytest

from connectomics.data.io import (VolumeError, atomic_path, open_volume, parse_spec, read_volume,
                                  temporary_name, write_volume)


def test_parse_spec():
    assert parse_spec("a/b.h5:main") == ("a/b.h5", "main")
    assert parse_spec("a/b.h5:/group/data") == ("a/b.h5", "group/data")
    assert parse_spec("a/b.h5") == ("a/b.h5", None)
    assert parse_spec("stack.tif") == ("stack.tif", None)


def test_h5_round_trip_keeps_other_datasets(tmp_path):
    path = str(tmp_path / "v.h5")
    image = np.random.default_rng(0).integers(0, 255, (5, 40, 30), dtype=np.uint8)
    label = np.arange(5 * 40 * 30, dtype=np.uint32).reshape(5, 40, 30)
    write_volume(path + ":image", image)
    write_volume(path + ":label", label)
    np.testing.assert_array_equal(read_volume(path + ":image"), image)
    np.testing.assert_array_equal(read_volume(path + ":label"), label)
    with h5py.File(path) as f:
        assert f["label"].compression == "gzip" and f["label"].chunks is not None
    assert read_volume(path).dtype == np.uint8  # first dataset when unnamed
    assert not os.path.exists(temporary_name(path))


def test_missing_file_and_key_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="volume file not found"):
        read_volume(str(tmp_path / "none.h5"))
    path = str(tmp_path / "v.h5")
    write_volume(path + ":image", np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(VolumeError, match=r"has no dataset 'label'; it has: image"):
        read_volume(path + ":label")
    with pytest.raises(VolumeError, match="expected a 2D"):
        read_volume(path, ndim=2)


def test_open_volume_is_lazy(tmp_path):
    path = str(tmp_path / "v.h5")
    write_volume(path, np.ones((4, 8, 8), np.uint8))
    with open_volume(path) as vol:
        assert vol.shape == (4, 8, 8)
        assert vol[1:2, :3, :3].sum() == 9


def test_atomic_path_removes_partial_on_error(tmp_path):
    final = str(tmp_path / "out.h5")
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("killed")
    assert not os.path.exists(final) and not os.path.exists(temporary_name(final))


def test_tiff_stack(tmp_path):
    import tifffile

    volume = np.random.default_rng(1).integers(0, 255, (3, 16, 12), dtype=np.uint8)
    tifffile.imwrite(str(tmp_path / "stack.tif"), volume, photometric="minisblack")
    np.testing.assert_array_equal(read_volume(str(tmp_path / "stack.tif")), volume)
    for z in range(3):
        tifffile.imwrite(str(tmp_path / f"slice{z:02d}.tif"), volume[z])
    np.testing.assert_array_equal(read_volume(str(tmp_path / "slice*.tif")), volume)


def test_json_tiles_with_rows_and_columns(tmp_path):
    import tifffile

    volume = np.random.default_rng(2).integers(0, 255, (2, 20, 30), dtype=np.uint8)
    size = 16
    for z in range(2):
        for r in range(2):
            for c in range(2):
                tifffile.imwrite(str(tmp_path / f"z{z}_r{r}_c{c}.tif"),
                                 volume[z, r * size:(r + 1) * size, c * size:(c + 1) * size])
    meta = {"image": [f"z{z}_r{{row}}_c{{column}}.tif" for z in range(2)], "depth": 2, "height": 20,
            "width": 30, "tile_size": size, "tile_st": [0, 0], "tile_ratio": 1, "dtype": "uint8"}
    (tmp_path / "vol.json").write_text(json.dumps(meta))
    with open_volume(str(tmp_path / "vol.json")) as vol:
        assert vol.shape == (2, 20, 30)
        np.testing.assert_array_equal(vol[1:2, 5:19, 10:27], volume[1:2, 5:19, 10:27])
        np.testing.assert_array_equal(np.asarray(vol), volume)


def test_json_tile_errors(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"image": ["a.png"], "depth": 1}))
    with pytest.raises(VolumeError, match="lacks height, width"):
        read_volume(str(tmp_path / "bad.json"))
