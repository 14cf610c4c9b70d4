"""Morphometrics against analytic shapes at anisotropic voxel sizes, blockwise = single process, bad input."""
import math
import os
import runpy

import h5py
import numpy as np
import pytest

from connectomics.measure import measure_instances, read_table, write_table
from connectomics.measure.sums import block_sums, merge_sums

VOXEL = (30.0, 8.0, 8.0)
SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "measure.py")


def _grid(shape):
    return np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")


def _scene():
    """(Z, Y, X) uint32 at 30 x 8 x 8 nm: a ball (r 300 nm), an ellipsoid (semi-axes 240, 480, 320 nm),
    a straight cylinder along x (r 180 nm, length 1400 nm; its axis off the voxel centres, as a real
    one would be), and a ball cut by the x = 0 border."""
    shape = (40, 200, 400)
    z, y, x = _grid(shape)
    zn, yn, xn = z * VOXEL[0], y * VOXEL[1], x * VOXEL[2]
    labels = np.zeros(shape, np.uint32)
    labels[((zn - 600) / 300) ** 2 + ((yn - 400) / 300) ** 2 + ((xn - 400) / 300) ** 2 <= 1] = 1
    labels[((zn - 600) / 240) ** 2 + ((yn - 1000) / 480) ** 2 + ((xn - 1200) / 320) ** 2 <= 1] = 2
    cylinder = ((zn - 607) ** 2 + (yn - 1203) ** 2 <= 180 ** 2) & (xn >= 1600) & (xn < 3000)
    labels[cylinder] = 3
    labels[((zn - 600) / 200) ** 2 + ((yn - 1400) / 200) ** 2 + ((xn - 40) / 200) ** 2 <= 1] = 7
    truth = {1: (4 / 3 * math.pi * 300 ** 3, 4 * math.pi * 300 ** 2),
             2: (4 / 3 * math.pi * 240 * 480 * 320, _ellipsoid_area(480, 320, 240)),
             3: (math.pi * 180 ** 2 * 1400, 2 * math.pi * 180 * 1400 + 2 * math.pi * 180 ** 2)}
    return labels, truth


def _ellipsoid_area(a, b, c):
    p = 1.6075  # Knud Thomsen's approximation (relative error <= 1.061%)
    return 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("measure")
    labels, truth = _scene()
    path = folder / "labels.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("main", data=labels, chunks=(8, 64, 64))
    image = folder / "image.h5"
    with h5py.File(image, "w") as f:
        f.create_dataset("main", data=np.where(labels > 0, 200, 50).astype(np.uint8))
    return folder, str(path), str(image), truth


def test_analytic_shapes(scene):
    _, labels, image, truth = scene
    rows, shape = measure_instances(labels, image_spec=image, voxel_size=VOXEL, slab=7)
    by_id = {r["id"]: r for r in rows}
    assert sorted(by_id) == [1, 2, 3, 7] and shape == (40, 200, 400)
    for i, (volume_nm3, area_nm2) in truth.items():
        row = by_id[i]
        assert row["volume_um3"] == pytest.approx(volume_nm3 / 1e9, rel=0.01), i
        assert row["surface_um2"] == pytest.approx(area_nm2 / 1e6, rel=0.03), i
        assert row["touches_border"] == 0 and row["mean_intensity"] == pytest.approx(200)
    assert by_id[1]["sphericity"] == pytest.approx(1.0, abs=0.03)
    assert by_id[1]["elongation"] == pytest.approx(1.0, abs=0.05)
    assert [by_id[2][f"axis_{n}_nm"] for n in ("major", "middle", "minor")] == pytest.approx([960, 640, 480], rel=0.03)
    assert by_id[2]["centroid_y_nm"] == pytest.approx(1000, abs=2) and by_id[2]["centroid_z_nm"] == pytest.approx(600)
    assert abs(by_id[3]["skeleton_um"] * 1000 - 1400) <= 2 * VOXEL[2]  # within two voxels along the rod
    assert by_id[3]["branches"] == 1
    assert by_id[7]["touches_border"] == 1 and by_id[7]["bbox_x0"] == 0
    assert by_id[1]["mean_foreground"] is None


def test_sums_of_blocks_equal_the_whole(scene):
    from connectomics.storage import read_volume

    _, labels, _, _ = scene
    volume = read_volume(labels)
    whole = block_sums(volume)
    parts = [block_sums(volume[z:z + 9, y:y + 70], (z, y, 0)) for z in range(0, 40, 9) for y in range(0, 200, 70)]
    merged = merge_sums(parts)
    for key, values in whole.items():
        np.testing.assert_array_equal(merged[key], values, err_msg=key)


def test_blockwise_rows_equal_single_process_rows(scene):
    from distributed import Client, LocalCluster

    _, labels, image, _ = scene
    single, _ = measure_instances(labels, image_spec=image, voxel_size=VOXEL, skeleton=False, slab=40)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        blockwise, _ = measure_instances(labels, image_spec=image, voxel_size=VOXEL, skeleton=False, slab=6,
                                         client=client)
    assert blockwise == single


def test_script_writes_csv_and_png_and_without_voxel_size_measures_in_voxels(scene, tmp_path):
    from PIL import Image

    _, labels, _, _ = scene
    main = runpy.run_path(SCRIPT, run_name="measure")["main"]
    out = tmp_path / "stats.csv"
    assert main(["-i", labels, "-o", str(out), "--no-skeleton"]) == 0
    rows, first = read_table(out)
    assert "voxel size unknown" in first and len(rows) == 4 and "volume_vox3" in rows[0]
    assert rows[0]["volume_vox3"] == rows[0]["voxels"]
    assert Image.open(tmp_path / "stats.png").size[0] > 500


def test_empty_volume_gives_a_header_and_a_png(tmp_path):
    main = runpy.run_path(SCRIPT, run_name="measure")["main"]
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("main", data=np.zeros((4, 16, 16), np.uint32)).attrs["voxel_size"] = [30, 8, 8]
    assert main(["-i", str(path), "-o", str(tmp_path / "e.csv")]) == 0
    rows, first = read_table(tmp_path / "e.csv")
    assert rows == [] and "30 x 8 x 8 nm" in first and (tmp_path / "e.png").exists()


@pytest.mark.parametrize("case", ["float", "negative", "shape", "big_ids"])
def test_bad_or_unusual_input(tmp_path, case, caplog):
    main = runpy.run_path(SCRIPT, run_name="measure")["main"]
    labels = np.zeros((4, 16, 16), np.int64)
    labels[1:3, 4:9, 4:9] = 5
    args = []
    if case == "float":
        labels = labels.astype(np.float32)
    elif case == "negative":
        labels[0, 0, 0] = -2
    elif case == "shape":
        with h5py.File(tmp_path / "image.h5", "w") as f:
            f.create_dataset("main", data=np.zeros((4, 16, 17), np.uint8))
        args = ["--image", str(tmp_path / "image.h5")]
    elif case == "big_ids":
        labels = labels.astype(np.uint64)
        labels[labels == 5] = 2 ** 40 + 3
    with h5py.File(tmp_path / "l.h5", "w") as f:
        f.create_dataset("main", data=labels)
    rc = main(["-i", str(tmp_path / "l.h5"), "-o", str(tmp_path / "s.csv"), "--voxel-size", "30", "8", "8", *args])
    if case == "big_ids":
        assert rc == 0 and read_table(tmp_path / "s.csv")[0][0]["id"] == 2 ** 40 + 3
        return
    assert rc == 2 and not (tmp_path / "s.csv").exists()
    assert {"float": "must be integers", "negative": "negative", "shape": "has shape [4, 16, 17]"}[case] in caplog.text


def test_write_table_is_atomic_and_rereadable(tmp_path):
    rows = [{"id": 3, "voxels": 10, "volume_um3": 0.5, "mean_foreground": None}]
    write_table(tmp_path / "t.csv", rows, VOXEL, (4, 5, 6))
    back, first = read_table(tmp_path / "t.csv")
    assert back[0]["id"] == 3 and back[0]["volume_um3"] == 0.5 and math.isnan(back[0]["mean_foreground"])
    assert sorted(os.listdir(tmp_path)) == ["t.csv"]


def test_coco_export_reads_back_into_the_evaluator(scene, tmp_path):
    import json

    from connectomics.evaluation import evaluate_volumes
    from connectomics.measure.coco import read_coco

    _, labels, _, _ = scene
    main = runpy.run_path(SCRIPT, run_name="measure")["main"]
    scores = tmp_path / "scores.txt"
    scores.write_text("1 0.9\n2 0.8\n3 0.7\n7 0.2\n")
    coco = tmp_path / "instances.json"
    assert main(["-i", labels, "-o", str(tmp_path / "s.csv"), "--no-skeleton", "--coco", str(coco),
                 "--scores", str(scores), "--voxel-size", "30", "8", "8"]) == 0
    document = json.loads(coco.read_text())
    ball = next(a for a in document["annotations"] if a["segmentation"]["label"] == 1)
    assert ball["bbox"] == [13, 13, 75, 75, 10, 21] and ball["score"] == 0.9 and ball["category_id"] == 1
    assert document["images"][0]["voxel_size_nm"] == [30.0, 8.0, 8.0]
    volume, table = read_coco(coco)
    assert volume.endswith("labels.h5") and table.tolist() == [[1, 0.9], [2, 0.8], [3, 0.7], [7, 0.2]]
    direct = evaluate_volumes(labels, labels, scores=str(scores), crumb_size=0, progress=False)
    evaluate = runpy.run_path(os.path.join(os.path.dirname(SCRIPT), "evaluate.py"), run_name="evaluate")["main"]
    assert evaluate(["-gt", labels, "-p", str(coco), "-thc", "0", "-o", str(tmp_path / "ev")]) == 0
    report = json.loads((tmp_path / "ev.json").read_text())
    assert report["summary"]["AP75"] == direct.summary["AP75"] == 1.0
    assert (tmp_path / "ev_errors.csv").exists() and (tmp_path / "ev_matching.csv").exists()
