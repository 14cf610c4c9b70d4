"""Volume I/O: HDF5 round trips and keys, TIFF stacks, JSON tiles, atomic writes, errors."""
import json
import os

import h5py
import numpy as np
import pytest

from connectomics.storage import (VolumeError, atomic_path, open_volume, parse_spec, read_volume, temporary_name,
                                  write_volume)


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


def test_image_stacks_are_read_slice_by_slice(tmp_path, monkeypatch):
    """A TIFF stack / folder of slices is a lazy (Z, Y, X) volume: a box reads only its slices."""
    import tifffile

    import connectomics.storage.images as images

    volume = np.random.default_rng(3).integers(0, 255, (6, 16, 12), dtype=np.uint8)
    tifffile.imwrite(str(tmp_path / "stack.tif"), volume, photometric="minisblack")
    (tmp_path / "slices").mkdir()
    for z in range(6):
        tifffile.imwrite(str(tmp_path / "slices" / f"s{z:02d}.tif"), volume[z])
    (tmp_path / "slices" / ".DS_Store").write_text("not an image")
    (tmp_path / "slices" / "sub").mkdir()
    read = []
    real = images.read_image
    monkeypatch.setattr(images, "read_image", lambda path: read.append(path) or real(path))
    for spec in ("stack.tif", "slices", "slices/*.tif"):
        with monkeypatch.context() as m:
            if spec == "stack.tif":  # a multi-page TIFF is read page by page, never whole
                m.setattr(tifffile, "imread", lambda *a, **k: pytest.fail("the whole stack was read"))
            with open_volume(str(tmp_path / spec)) as vol:
                assert vol.shape == (6, 16, 12) and vol.dtype == np.uint8 and not isinstance(vol, np.ndarray)
                read.clear()
                np.testing.assert_array_equal(vol[2:4, 3:9, 1:5], volume[2:4, 3:9, 1:5])
                assert len(read) == (0 if spec == "stack.tif" else 2)  # only the slices of the box
                np.testing.assert_array_equal(vol[-1], volume[-1])
                np.testing.assert_array_equal(vol[..., 3], volume[..., 3])
        np.testing.assert_array_equal(read_volume(str(tmp_path / spec)), volume)


def test_single_2d_image_is_a_one_slice_volume(tmp_path):
    import tifffile

    image = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    tifffile.imwrite(str(tmp_path / "one.tif"), image)
    (tmp_path / "folder").mkdir()
    tifffile.imwrite(str(tmp_path / "folder" / "z0.tif"), image)
    for spec in ("one.tif", "folder"):
        got = read_volume(str(tmp_path / spec), ndim=3)
        assert got.shape == (1, 12, 10)
        np.testing.assert_array_equal(got[0], image)


def test_json_tiles_take_integer_indices(tmp_path):
    """Overlays and evaluation read single slices (``vol[z]``) of a JSON tile volume."""
    import tifffile

    volume = np.random.default_rng(4).integers(0, 255, (3, 20, 30), dtype=np.uint8)
    for z in range(3):
        tifffile.imwrite(str(tmp_path / f"z{z}.tif"), volume[z])
    meta = {"image": [f"z{z}.tif" for z in range(3)], "depth": 3, "height": 20, "width": 30}
    (tmp_path / "vol.json").write_text(json.dumps(meta))
    with open_volume(str(tmp_path / "vol.json")) as vol:
        np.testing.assert_array_equal(vol[1], volume[1])
        np.testing.assert_array_equal(vol[-1, 2:5], volume[-1, 2:5])
        np.testing.assert_array_equal(vol[np.int64(0), :, 7], volume[0, :, 7])
        with pytest.raises(IndexError, match="out of range"):
            vol[3]
        with pytest.raises(IndexError, match="step-1"):
            vol[::2]


def test_convert_volume_round_trip_and_keeps_other_datasets(tmp_path):
    from connectomics.storage.convert import convert_volume

    data = np.random.default_rng(0).integers(0, 255, (2, 5, 30, 40), dtype=np.uint8)
    write_volume(f"{tmp_path / 'probs.h5'}:main", data)
    convert_volume(f"{tmp_path / 'probs.h5'}:main", str(tmp_path / "probs.zarr"), chunks=(2, 16, 16))
    with open_volume(str(tmp_path / "probs.zarr")) as z:
        assert tuple(z.chunks) == (2, 2, 16, 16) and np.array_equal(z[...], data)
    target = tmp_path / "both.h5"
    write_volume(f"{target}:image", data[0])
    with pytest.raises(VolumeError, match="exists.*--overwrite"):
        convert_volume(str(tmp_path / "probs.zarr"), f"{target}:probs")
    convert_volume(str(tmp_path / "probs.zarr"), f"{target}:probs", overwrite=True)
    assert np.array_equal(read_volume(f"{target}:probs"), data)
    assert np.array_equal(read_volume(f"{target}:image"), data[0])  # not lost


def test_a_registered_format_is_read_by_name_everywhere(tmp_path, monkeypatch):
    """storage.register_format: one opener makes a new format readable wherever volumes are opened
    by name; its endings match before the older ones (.nested.zarr before .zarr)."""
    import contextlib

    from connectomics.storage import FORMATS, format_of, read_volume, register_format, volume_identity
    from connectomics.storage import volume as volume_module

    monkeypatch.setattr(volume_module, "OPENERS", dict(volume_module.OPENERS))
    saved = dict(FORMATS)
    try:
        register_format("npy", (".npy",), lambda path, key: contextlib.nullcontext(np.load(path, mmap_mode="r")))
        register_format("nested", (".nested.zarr",), volume_module.OPENERS["zarr"])
        assert list(FORMATS)[:2] == ["nested", "npy"]
        assert format_of("a.nested.zarr") == "nested" and format_of("a.zarr") == "zarr"
        assert format_of("b.NPY") == "npy" and format_of("c.ome.zarr") == "ome-zarr"
        data = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)
        np.save(tmp_path / "v.npy", data)
        with open_volume(str(tmp_path / "v.npy")) as vol:
            assert vol.shape == (2, 3, 4) and isinstance(vol, np.memmap)
        np.testing.assert_array_equal(read_volume(str(tmp_path / "v.npy")), data)
        assert volume_identity(str(tmp_path / "v.npy"))
    finally:
        FORMATS.clear()
        FORMATS.update(saved)
    assert format_of("a.nested.zarr") == "zarr"


@pytest.mark.parametrize("kind", ["h5", "zarr"])
def test_create_output_publishes_complete_and_keeps_other_members(tmp_path, kind):
    """storage.create_output: filled under a temporary name, published when complete; the HDF5
    file's other datasets / the zarr group's other arrays stay; an error leaves nothing behind."""
    import os

    import zarr

    from connectomics.storage import create_output, read_volume, write_volume

    path = str(tmp_path / f"out.{kind}")
    data = np.arange(4 * 6 * 8, dtype=np.uint32).reshape(4, 6, 8)
    if kind == "h5":
        write_volume(path + ":other", data + 1)
    else:
        zarr.open_group(path, mode="w").create_array("other", shape=(2,), dtype="uint8")[:] = 7
    with create_output(path + ":seg", data.shape, data.dtype, (2, 6, 8), {"note": "x"}) as out:
        assert not os.path.exists(path + (":seg" if kind == "h5" else "/seg"))
        for z in range(4):
            out[z:z + 1] = data[z:z + 1]
    np.testing.assert_array_equal(read_volume(path + ":seg"), data)
    assert read_volume(path + ":other").size in (2, data.size)
    with pytest.raises(RuntimeError, match="stop"):
        with create_output(path + ":broken", data.shape, data.dtype, (2, 6, 8)):
            raise RuntimeError("stop")
    leftovers = [name for name in os.listdir(tmp_path) if name.startswith(".")]
    assert not leftovers and "broken" not in (os.listdir(path) if kind == "zarr" else [])
    with pytest.raises(VolumeError, match="can write hdf5, zarr, ome-zarr, tiff volumes"):
        create_output(str(tmp_path / "x.png"), data.shape, data.dtype, (2, 6, 8))
