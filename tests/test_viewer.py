"""The neuroglancer view, rendered in a real (headless) browser: what a person would check on screen."""
import os
import runpy
import shutil

import numpy as np
import pytest

from connectomics.errors import VolumeError

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "view.py")
SIZE = (640, 480)


def _need_browser():
    if shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome"):
        return
    if os.environ.get("CI"):
        pytest.fail("headless Chromium is missing: .ci/run installs it (apt-get install chromium chromium-driver)")
    pytest.skip("headless Chromium is not installed (apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from connectomics.data.synthetic import write_synthetic_pair

    folder = tmp_path_factory.mktemp("view")
    image, labels = str(folder / "image.h5"), str(folder / "labels.h5")
    write_synthetic_pair(image, labels, (8, 200, 240), seed=3)
    return folder, image, labels


def _coloured(png):
    from PIL import Image

    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return rgb, (rgb.max(-1) - rgb.min(-1)) > 40  # saturated: a segment colour, not the grey image


def _expected_mask(labels, scale):
    """Which screen pixels show a labelled voxel of the centre slice (the view is centred on the volume)."""
    from connectomics.storage import read_volume

    volume = read_volume(labels)
    z, (height, width) = volume.shape[0] // 2, volume.shape[1:]
    w, h = SIZE
    ys = np.floor(height / 2 + (np.arange(h) + 0.5 - h / 2) * scale).astype(int)
    xs = np.floor(width / 2 + (np.arange(w) + 0.5 - w / 2) * scale).astype(int)
    inside = (ys[:, None] >= 0) & (ys[:, None] < height) & (xs[None] >= 0) & (xs[None] < width)
    mask = np.zeros((h, w), bool)
    mask[inside] = volume[z][np.clip(ys, 0, height - 1)[:, None].repeat(w, 1)[inside],
                             np.clip(xs, 0, width - 1)[None].repeat(h, 0)[inside]] > 0
    return mask, inside


def test_screenshot_shows_the_image_and_instance_colours_where_instances_are(scene, tmp_path):
    _need_browser()
    from connectomics.viewer import screenshot, view

    _, image, labels = scene
    with view(image=image, voxel_size=(30, 8, 8)) as viewer:
        screenshot(viewer, str(tmp_path / "image.png"), size=SIZE)
    with view(image=image, instances=labels, voxel_size=(30, 8, 8)) as viewer:
        screenshot(viewer, str(tmp_path / "both.png"), size=SIZE)
        scale = viewer.state.cross_section_scale
    expected, inside = _expected_mask(labels, scale)
    grey, grey_coloured = _coloured(tmp_path / "image.png")
    assert grey[inside].std() > 10, "the image layer is blank"
    assert grey_coloured[inside].mean() < 0.01  # the image alone is grey
    _, coloured = _coloured(tmp_path / "both.png")
    overlap = (coloured & expected).sum()
    assert expected.sum() > 1000
    assert overlap / expected.sum() > 0.85, "instances without their colour"
    assert overlap / max(coloured.sum(), 1) > 0.85, "colour where there is no instance"


def test_view_script_screenshot_and_errors(scene, tmp_path, capsys, caplog):
    _need_browser()
    folder, image, labels = scene
    main = runpy.run_path(SCRIPT, run_name="view")["main"]
    png = tmp_path / "view.png"
    assert main(["--image", image, "--instances", labels, "--gt", labels, "--voxel-size", "30", "8", "8",
                 "--screenshot", str(png), "--size", "320", "240"]) == 0
    assert png.stat().st_size > 1000 and f"screenshot: {png}" in capsys.readouterr().out
    # volumes of different shapes: one line, exit 2
    from connectomics.data.synthetic import write_synthetic_pair

    other = str(folder / "other.h5")
    write_synthetic_pair(other, str(folder / "other_labels.h5"), (8, 100, 100), seed=4)
    assert main(["--image", image, "--instances", other, "--screenshot", str(tmp_path / "x.png")]) == 2
    assert "differ in shape" in capsys.readouterr().err + caplog.text
    assert not (tmp_path / "x.png").exists()


def test_busy_port_falls_back_to_a_free_one(scene):
    import socket

    from connectomics.viewer import view

    _, image, _ = scene
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with view(image=image, port=port) as viewer:
            url = viewer.get_viewer_url()
    assert f":{port}/" not in url and url.startswith("http://127.0.0.1:")


def test_nothing_to_view_is_an_error():
    from connectomics.viewer import view

    with pytest.raises(VolumeError, match="nothing to view"):
        with view():
            pass


def test_errors_flag_colours_a_missed_instance_red_and_a_false_positive_yellow(scene, tmp_path):
    _need_browser()
    import h5py

    from connectomics.storage import read_volume
    from connectomics.viewer import screenshot, view

    _, _, labels = scene
    gt = read_volume(labels)
    centre = gt[gt.shape[0] // 2]
    ids, counts = np.unique(centre[centre > 0], return_counts=True)
    missed = int(ids[np.argmax(counts)])
    pred = gt.copy()
    pred[pred == missed] = 0
    empty = np.argwhere(centre == 0)
    y, x = empty[len(empty) // 2]
    y0, x0 = max(0, y - 6), max(0, x - 6)
    fp_region = np.zeros(gt.shape, bool)
    fp_region[:, y0:y0 + 12, x0:x0 + 12] = True
    fp_region &= gt == 0
    pred[fp_region] = 999
    gt_path, pred_path = str(tmp_path / "gt.h5"), str(tmp_path / "pred.h5")
    for path, data in ((gt_path, gt), (pred_path, pred)):
        with h5py.File(path, "w") as f:
            f.create_dataset("main", data=data)
    with view(instances=pred_path, gt=gt_path, voxel_size=(30, 8, 8), errors=True, crumb_size=0) as viewer:
        screenshot(viewer, str(tmp_path / "errors.png"), size=SIZE)
        scale = viewer.state.cross_section_scale
    from PIL import Image

    rgb = np.asarray(Image.open(tmp_path / "errors.png").convert("RGB")).astype(int)
    red = (rgb[..., 0] > 2 * rgb[..., 1] + 20) & (rgb[..., 0] > 2 * rgb[..., 2])
    yellow = (rgb[..., 0] > 60) & (rgb[..., 1] > 0.6 * rgb[..., 0]) & (rgb[..., 2] < 0.3 * rgb[..., 0])
    missed_mask, _ = _expected_mask_of(gt == missed, scale)
    fp_mask, _ = _expected_mask_of(pred == 999, scale)
    assert missed_mask.sum() > 200 and (red & missed_mask).sum() / missed_mask.sum() > 0.8
    assert fp_mask.sum() > 20 and (yellow & fp_mask).sum() / fp_mask.sum() > 0.6
    assert (red & ~missed_mask).sum() < 0.1 * missed_mask.sum()


def _expected_mask_of(volume, scale):
    """Which screen pixels show a True voxel of the centre slice of the boolean ``volume``."""
    z, (height, width) = volume.shape[0] // 2, volume.shape[1:]
    w, h = SIZE
    ys = np.floor(height / 2 + (np.arange(h) + 0.5 - h / 2) * scale).astype(int)
    xs = np.floor(width / 2 + (np.arange(w) + 0.5 - w / 2) * scale).astype(int)
    inside = (ys[:, None] >= 0) & (ys[:, None] < height) & (xs[None] >= 0) & (xs[None] < width)
    mask = np.zeros((h, w), bool)
    yy, xx = np.clip(ys, 0, height - 1)[:, None].repeat(w, 1), np.clip(xs, 0, width - 1)[None].repeat(h, 0)
    mask[inside] = volume[z][yy[inside], xx[inside]]
    return mask, inside


def test_meshes_from_crops_match_neuroglancers_own_and_render_in_3d(scene, tmp_path):
    import struct

    import neuroglancer

    from connectomics.viewer import CropMeshes

    labels = np.zeros((8, 32, 64), np.uint32)
    labels[2:5, 10:20, 30:60] = 7
    dims = neuroglancer.CoordinateSpace(names=["z", "y", "x"], units="nm", scales=[30, 8, 8])
    theirs = neuroglancer.LocalVolume(data=labels, dimensions=dims, volume_type="segmentation").get_object_mesh(7)
    ours = CropMeshes(labels, (30, 8, 8), slab=3).mesh(7)

    def vertices(data):
        n = struct.unpack("<I", data[:4])[0]
        return np.frombuffer(data[4:4 + 12 * n], "<f4").reshape(n, 3)

    np.testing.assert_allclose(vertices(ours).min(0), vertices(theirs).min(0), rtol=1e-6)
    np.testing.assert_allclose(vertices(ours).max(0), vertices(theirs).max(0), rtol=1e-6)
    assert CropMeshes(labels, (30, 8, 8)).mesh(5) is None
    _need_browser()
    from PIL import Image

    from connectomics.viewer import screenshot, view

    _, image, labels_path = scene
    with view(image=image, instances=labels_path, voxel_size=(30, 8, 8)) as viewer:
        screenshot(viewer, str(tmp_path / "3d.png"), size=SIZE, layout="3d")
    rgb = np.asarray(Image.open(tmp_path / "3d.png").convert("RGB")).astype(int)
    frame = (rgb[..., 0] > 150) & (rgb[..., 1] > 150) & (rgb[..., 2] < 100)  # the yellow bounding box
    assert (((rgb.max(-1) - rgb.min(-1)) > 40) & ~frame).mean() > 0.02  # coloured meshes, not an empty box
