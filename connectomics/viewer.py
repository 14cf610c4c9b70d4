"""A neuroglancer view of a volume and its results: image, probability maps, instances, ground truth.

Every layer is served lazily by the ``neuroglancer`` package's local server (its viewer is in
the package, so no internet is needed): a chunk is read from the HDF5 / zarr / OME-Zarr file
when the browser asks for it, so memory is set by the chunks on screen, not by the volume.
Segmentation layers get their 3D meshes on demand (select a segment). ``screenshot`` renders the
view in headless Chromium and writes a PNG.
"""
import contextlib
import logging
import os

import numpy as np

from connectomics.errors import VolumeError

logger = logging.getLogger(__name__)

MAP_COLOURS = ("#00ff00", "#ff00ff")  # foreground, contour
MAX_SELECTED = 2000  # segments of the centre slice selected when the view opens


class Channel:
    """Channel ``c`` of a lazy (C, Z, Y, X) array: a lazy (Z, Y, X) array (only the slice asked is read)."""

    def __init__(self, array, c):
        self.array, self.c = array, int(c)
        self.shape, self.dtype = tuple(array.shape[1:]), array.dtype

    def __getitem__(self, item):
        item = item if isinstance(item, tuple) else (item,)
        return np.asarray(self.array[(self.c,) + item])


def _shader(colour):
    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return f"void main() {{ emitRGBA(vec4({r:.3f}, {g:.3f}, {b:.3f}, toNormalized(getDataValue()))); }}"


def open_layers(stack, image=None, instances=None, maps=None, gt=None):
    """``[(name, kind, lazy array, shader or None)]`` of the volumes given (specs), opened in the
    ExitStack ``stack`` (kept open while the viewer serves them). kind: 'image' / 'segmentation'."""
    from connectomics.storage import open_volume

    layers = []
    if image:
        layers.append(("image", "image", stack.enter_context(open_volume(image)), None))
    if maps:
        array = stack.enter_context(open_volume(maps))
        if array.ndim != 4:
            raise VolumeError(f"{maps}: expected (C, Z, Y, X) probability maps, got shape {tuple(array.shape)}")
        for c, name in enumerate(("foreground", "contour")[:array.shape[0]]):
            layers.append((name, "image", Channel(array, c), _shader(MAP_COLOURS[c])))
    for name, spec in (("instances", instances), ("ground truth", gt)):
        if spec:
            layers.append((name, "segmentation", stack.enter_context(open_volume(spec)), None))
    if not layers:
        raise VolumeError("nothing to view: give --image, --instances, --maps or --gt (or --config-file)")
    shapes = {tuple(array.shape[-3:]) for _, _, array, _ in layers}
    if len(shapes) > 1:
        raise VolumeError(f"the volumes differ in shape (z, y, x): {sorted(shapes)}")
    return layers


def start_viewer(layers, voxel_size=None, bind_address="127.0.0.1", port=0):
    """A ``neuroglancer.Viewer`` serving ``layers`` (:func:`open_layers`) with ``voxel_size``
    ((z, y, x) nm; None: 1 nm), the view centred on the volume, 2D slices beside the 3D view."""
    import neuroglancer

    if port and not _port_free(bind_address, port):
        logger.warning("port %d is in use: serving on a free port instead", port)
        port = 0
    neuroglancer.set_server_bind_address(bind_address, port)
    scales = [float(v) for v in (voxel_size or (1.0, 1.0, 1.0))]
    dims = neuroglancer.CoordinateSpace(names=["z", "y", "x"], units="nm", scales=scales)
    viewer = neuroglancer.Viewer()
    shape = layers[0][2].shape[-3:]
    with viewer.txn() as state:
        state.dimensions = dims
        state.display_dimensions = ["x", "y", "z"]  # 'xy' panels show y-x slices
        state.position = [n / 2 for n in shape]
        state.cross_section_scale = max(shape[1] / 700, shape[2] / 1000) * scales[1] / min(scales)  # slice fits
        for name, kind, array, shader in layers:
            volume = neuroglancer.LocalVolume(data=array, dimensions=dims, volume_type=kind)
            if kind == "segmentation":  # the ids of the centre slice selected: each in its own colour
                ids = np.unique(np.asarray(array[shape[0] // 2]))
                state.layers[name] = neuroglancer.SegmentationLayer(source=volume,
                                                                     segments=[int(i) for i in ids[ids > 0][:MAX_SELECTED]])
            else:
                state.layers[name] = neuroglancer.ImageLayer(source=volume, **({"shader": shader} if shader else {}))
    return viewer


def screenshot(viewer, path, size=(1024, 768), layout="xy", timeout=120):
    """Render ``viewer`` in headless Chromium and write the PNG ``path`` (atomically); returns ``path``.

    ``layout``: neuroglancer layout ('xy': one slice through the centre; '4panel' ...).
    Needs ``chromium`` and ``chromedriver`` (Debian: ``apt-get install chromium chromium-driver``).
    """
    import neuroglancer.webdriver

    from connectomics.storage import atomic_path

    os.environ.setdefault("SE_OFFLINE", "true")  # selenium: use the chromedriver installed, never download one
    logging.getLogger("selenium.webdriver.common.selenium_manager").setLevel(logging.ERROR)
    with viewer.txn() as state:
        state.layout = layout
        state.show_axis_lines = False
    args = ["--no-sandbox", "--disable-dev-shm-usage", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
            "--ignore-gpu-blocklist"]
    binary = _chromium()
    try:
        driver = neuroglancer.webdriver.Webdriver(viewer, headless=True, browser_binary_path=binary,
                                                  extra_command_line_args=args, print_logs=False,
                                                  window_size=tuple(size))
    except Exception as err:  # noqa: BLE001 - selenium raises many kinds when no browser can start
        raise VolumeError(f"could not start headless Chromium for the screenshot ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''}); install it with "
                          "`apt-get install chromium chromium-driver`") from None
    with driver:
        driver.sync()
        shot = viewer.screenshot(size=list(size))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(shot.screenshot.image)
    return path


def _port_free(address, port):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def _chromium():
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@contextlib.contextmanager
def view(image=None, instances=None, maps=None, gt=None, voxel_size=None, bind_address="127.0.0.1", port=0):
    """Context manager: the viewer of these volumes (specs), files open while it lasts."""
    with contextlib.ExitStack() as stack:
        layers = open_layers(stack, image, instances, maps, gt)
        yield start_viewer(layers, voxel_size, bind_address, port)


def view_command(image=None, instances=None, maps=None, gt=None):
    """The command line that views these volumes (printed after a run)."""
    parts = ["python scripts/view.py"] + [f"--{flag} {spec}" for flag, spec in
                                          (("image", image), ("instances", instances), ("maps", maps), ("gt", gt)) if spec]
    return " ".join(parts)
