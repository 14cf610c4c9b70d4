"""OME-Zarr (NGFF 0.4) output and input, and the voxel size carried from inputs to outputs."""
import json
import os

import h5py
import numpy as np
import pytest

from connectomics.storage import VolumeError, create_output, read_volume, temporary_name
from connectomics.storage.ome_zarr import downsample, level_shapes
from connectomics.storage.voxel import read_voxel_size, resolve_voxel_size


def _labels(shape=(6, 600, 520)):
    labels = np.zeros(shape, np.uint32)
    labels[1:5, 100:300, 50:400] = 7
    labels[:, 400:, :] = 3
    labels[2, 10:13, 10:13] = 9  # a small instance
    return labels


def _write(spec, array, voxel=(30, 8, 8)):
    with create_output(spec, array.shape, array.dtype, (4, 256, 256), attrs={"voxel_size": list(voxel)}) as out:
        out[...] = array


def test_image_and_labels_are_valid_ngff_read_by_other_readers(tmp_path):
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v04.image import Image
    from ome_zarr_models.v04.image_label import ImageLabel

    image = np.random.default_rng(0).integers(0, 256, (6, 600, 520), dtype=np.uint8)
    labels = _labels()
    store = str(tmp_path / "result.ome.zarr")
    _write(store, image)
    _write(f"{store}:labels/instances", labels)
    assert np.array_equal(read_volume(store), image)
    assert np.array_equal(read_volume(f"{store}:labels/instances"), labels)
    # validated and read by code that is not ours
    model = Image.from_zarr(zarr.open_group(store, mode="r"))
    scales = [d.coordinateTransformations[0].scale for d in model.attributes.multiscales[0].datasets]
    assert scales == [[30.0, 8.0, 8.0], [30.0, 16.0, 16.0], [30.0, 32.0, 32.0]]
    label = ImageLabel.from_zarr(zarr.open_group(f"{store}/labels/instances", mode="r"))
    assert label.attributes.image_label.source.image == "../../"
    nodes = list(Reader(parse_url(store))())
    shapes = [tuple(d.shape) for d in nodes[0].data]
    assert shapes == [(6, 600, 520), (6, 300, 260), (6, 150, 130)]
    assert json.load(open(f"{store}/labels/.zattrs"))["labels"] == ["instances"]
    assert read_voxel_size(store) == (30.0, 8.0, 8.0) == read_voxel_size(f"{store}:labels/instances")
    # levels of labels hold only values of level 0 (mode, not mean)
    level1 = read_volume(f"{store}:labels/instances/1")
    assert set(np.unique(level1)) <= {0, 3, 7, 9} and level1[2, 60, 50] == 7
    # rewriting the label keeps the image and lists the label once
    _write(f"{store}:labels/instances", labels + 1)
    assert json.load(open(f"{store}/labels/.zattrs"))["labels"] == ["instances"]
    assert np.array_equal(read_volume(store), image)


def test_pyramid_levels_and_downsampling():
    assert level_shapes((2, 5, 1100, 520)) == [(2, 5, 1100, 520), (2, 5, 550, 260), (2, 5, 275, 130)]
    assert level_shapes((5, 200, 900)) == [(5, 200, 900)]
    block = np.array([[[1, 1, 2], [3, 1, 2], [4, 4, 5]]], np.uint32)
    assert downsample(block, labels=True).tolist() == [[[1, 2], [4, 5]]]
    image = np.array([[[0, 255], [255, 255]]], np.uint8)
    assert downsample(image, labels=False).tolist() == [[[191]]]


def test_maps_to_ome_zarr_with_channels_and_a_failed_write_leaves_nothing(tmp_path):
    maps = np.random.default_rng(1).integers(0, 256, (2, 4, 520, 600), dtype=np.uint8)
    store = str(tmp_path / "probs.ome.zarr")
    _write(store, maps, voxel=(40, 5, 5))
    attrs = json.load(open(f"{store}/.zattrs"))["multiscales"][0]
    assert [a["name"] for a in attrs["axes"]] == ["c", "z", "y", "x"]
    assert attrs["datasets"][1]["coordinateTransformations"][0]["scale"] == [1.0, 40.0, 10.0, 10.0]
    assert np.array_equal(read_volume(store), maps)
    other = str(tmp_path / "broken.ome.zarr")
    with pytest.raises(RuntimeError):
        with create_output(other, maps.shape, maps.dtype, (4, 256, 256)) as out:
            out[0] = maps[0]
            raise RuntimeError("killed")
    assert not os.path.exists(other) and not os.path.exists(temporary_name(other))


def test_convert_hdf5_to_ome_zarr_and_back_keeps_data_and_voxel_size(tmp_path):
    import runpy

    main = runpy.run_path(os.path.join(os.path.dirname(__file__), "..", "scripts", "convert_volume.py"),
                          run_name="convert_volume")["main"]
    labels = _labels((4, 300, 300))
    src = tmp_path / "seg.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("main", data=labels).attrs["resolution"] = [30, 8, 8]
    store = str(tmp_path / "seg.ome.zarr")
    assert main([f"{src}:main", f"{store}:labels/seg"]) == 0
    assert read_voxel_size(f"{store}:labels/seg") == (30.0, 8.0, 8.0)
    back = tmp_path / "back.h5"
    assert main([f"{store}:labels/seg", str(back), "--voxel-size", "30", "8", "8"]) == 0
    assert np.array_equal(read_volume(back), labels) and read_voxel_size(back) == (30.0, 8.0, 8.0)
    assert main([f"{src}:main", str(tmp_path / "x.ome.zarr"), "--voxel-size", "40", "8", "8"]) == 2  # disagrees
    assert main([f"{src}:main", f"{store}:labels/seg"]) == 2  # exists: refused without --overwrite
    image = tmp_path / "image.h5"
    with h5py.File(image, "w") as f:
        f.create_dataset("raw", data=np.full(labels.shape, 9, np.uint8))
    assert main([f"{image}:raw", store, "--voxel-size", "30", "8", "8"]) == 0  # the image comes after its label
    assert np.array_equal(read_volume(f"{store}:labels/seg"), labels) and read_volume(store).max() == 9


def test_voxel_size_sources_and_conflicts(tmp_path):
    import tifffile

    h5 = tmp_path / "a.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("raw", data=np.zeros((2, 4, 4), np.uint8)).attrs["element_size_um"] = [0.03, 0.008, 0.008]
    assert read_voxel_size(f"{h5}:raw") == pytest.approx((30.0, 8.0, 8.0))
    tif = tmp_path / "a.tif"
    tifffile.imwrite(tif, np.zeros((3, 4, 4), np.uint8), imagej=True, resolution=(1 / 0.008, 1 / 0.008),
                     metadata={"spacing": 0.03, "unit": "um"})
    assert read_voxel_size(tif) == pytest.approx((30.0, 8.0, 8.0))
    assert resolve_voxel_size([], [f"{h5}:raw", str(tif)]) == pytest.approx((30.0, 8.0, 8.0))
    with pytest.raises(VolumeError, match=r"a.h5:raw records voxel size \[30, 8, 8\] nm, DATASET.VOXEL_SIZE \[40, 8, 8\]"):
        resolve_voxel_size([40, 8, 8], [f"{h5}:raw"])
    assert resolve_voxel_size([40, 8, 8], [f"{h5}:raw"], override=True) == (40.0, 8.0, 8.0)
    assert resolve_voxel_size([], [str(tmp_path / "none.h5")]) is None


@pytest.mark.parametrize("value", ["[30, 8]", "[0, 8, 8]", "[-30, 8, 8]"])
def test_bad_voxel_size_is_a_config_error(value):
    from connectomics.config import ConfigError, load_cfg

    with pytest.raises(ConfigError, match="DATASET.VOXEL_SIZE"):
        load_cfg(None, ["DATASET.VOXEL_SIZE", value])


@pytest.mark.parametrize("block", [(4, 128, 128), (4, 96, 100)])  # levels written by the blocks / made at the end
def test_blocks_written_in_parallel_give_the_sequential_pyramid(tmp_path, block):
    from connectomics.geometry import BlockGrid
    from connectomics.storage.output import output_writer, write_region

    labels = _labels((6, 600, 520))
    sequential = str(tmp_path / "seq.ome.zarr")
    _write(sequential, labels)
    out = str(tmp_path / "par.ome.zarr")
    writer = output_writer(out, parallel=True)
    tmp, where = writer.start(out, None, labels.shape, labels.dtype, block, {"run": 1}, {"voxel_size": [30, 8, 8]})
    grid = BlockGrid(labels.shape, block)
    for index in grid.indices():
        box = grid.box(index)
        write_region(where, box.slices(), labels[box.slices()])
    writer.finish(tmp, out)
    for level in range(3):
        assert np.array_equal(read_volume(f"{out}:{level}"), read_volume(f"{sequential}:{level}")), level
    ours, theirs = (json.load(open(f"{path}/.zattrs"))["multiscales"][0] for path in (out, sequential))
    assert (ours["datasets"], ours["axes"]) == (theirs["datasets"], theirs["axes"])
    assert os.path.exists(f"{out}/2/.zarray") and not os.path.exists(tmp)


def test_label_mode_kernel_equals_the_numpy_rule():
    rng = np.random.default_rng(0)
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        block = rng.integers(0, 4, (3, 41, 60)).astype(dtype)  # many ties; an odd side padded
        kernel = downsample(block, labels=True)
        numpy_rule = downsample(block[None], labels=True)[0]  # 4D: the NumPy path
        assert kernel.dtype == dtype and np.array_equal(kernel, numpy_rule)


def test_tiff_output_round_trips_with_the_voxel_size(tmp_path):
    import runpy

    main = runpy.run_path(os.path.join(os.path.dirname(__file__), "..", "scripts", "convert_volume.py"),
                          run_name="convert_volume")["main"]
    labels = _labels((4, 300, 300))
    store = str(tmp_path / "seg.ome.zarr")
    _write(f"{store}:labels/seg", labels)
    image = np.random.default_rng(3).integers(0, 256, labels.shape, dtype=np.uint8)
    _write(store, image)
    for spec, data, name in ((f"{store}:labels/seg", labels, "labels.tif"), (store, image, "image.tif")):
        out = str(tmp_path / name)
        assert main([spec, out]) == 0  # OME-Zarr -> TIFF (uint32 plain, uint8 ImageJ)
        assert np.array_equal(read_volume(out), data) and read_voxel_size(out) == pytest.approx((30.0, 8.0, 8.0))
    assert main([str(tmp_path / "labels.tif"), str(tmp_path / "back.ome.zarr:labels/seg")]) == 0  # and back
    assert np.array_equal(read_volume(str(tmp_path / "back.ome.zarr:labels/seg")), labels)
    wide = tmp_path / "wide.h5"
    with h5py.File(wide, "w") as f:
        f.create_dataset("main", data=labels.astype(np.uint64))
    assert main([str(wide), str(tmp_path / "wide.tif")]) == 2 and not (tmp_path / "wide.tif").exists()
