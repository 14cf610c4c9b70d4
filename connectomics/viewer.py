"""A neuroglancer view of a volume and its results: image, probability maps, instances, ground truth.

Every layer is served lazily by the ``neuroglancer`` package's local server (its viewer is in
the package, so no internet is needed): a chunk is read from the HDF5 / zarr / OME-Zarr file
when the browser asks for it, so memory is set by the chunks on screen, not by the volume.
Segmentation layers get a segment's 3D mesh on demand (select it), made from its crop
(:class:`CropMeshes`). ``screenshot`` renders the
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
SELECT_WINDOW = 2048  # ... read from the middle SELECT_WINDOW x SELECT_WINDOW of that slice


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


ERROR_COLOURS = {"missed (FN)": "#ff1744", "split GT": "#ff9100", "merged GT": "#d500f9",
                 "background FP": "#ffea00"}  # the error layers of --errors


def error_layers(stack, instances, gt, crumb_size=2000, area_thresholds=(5e3, 3e4)):
    """Segmentation layers of the errors of ``instances`` against ``gt`` (the evaluator's error
    analysis, :mod:`connectomics.evaluation.errors`): the missed GT instances, the split and the
    merged ones (GT ids), and the background false positives (prediction ids), each in one colour."""
    from connectomics.evaluation import AREA_NAMES, area_ranges, overlap_table
    from connectomics.evaluation.errors import analyse_errors
    from connectomics.storage import open_volume

    if not (instances and gt):
        raise VolumeError("--errors needs --instances and --gt")
    table = overlap_table(gt, instances, progress=None)
    analysis = analyse_errors(table, area_ranges(area_thresholds), AREA_NAMES, crumb_size)
    association, ids = analysis.gt["association"], analysis.gt["ids"]
    groups = {"missed (FN)": (gt, ids[association == "missing"]),
              "split GT": (gt, ids[(association == "split") | (association == "many-to-many")]),
              "merged GT": (gt, ids[(association == "merged") | (association == "many-to-many")]),
              "background FP": (instances, analysis.background_fp["ids"])}
    layers = []
    for name, (spec, chosen) in groups.items():
        options = {"segments": [int(i) for i in chosen[:MAX_SELECTED]], "colour": ERROR_COLOURS[name],
                   "visible": len(chosen) > 0}  # an empty selection would show every segment
        layers.append((name, "segmentation", stack.enter_context(open_volume(spec)), None, options))
    logger.info("errors: %s", ", ".join(f"{name} {len(chosen)}" for name, (_, chosen) in groups.items()))
    return layers


def open_layers(stack, image=None, instances=None, maps=None, gt=None):
    """``[(name, kind, lazy array, shader or None, options)]`` of the volumes given (specs), opened in
    the ExitStack ``stack`` (kept open while the viewer serves them). kind: 'image' / 'segmentation';
    options: ``segments`` (selected ids) and ``colour`` of a segmentation layer, ``visible``."""
    from connectomics.storage import open_volume

    layers = []
    if image:
        layers.append(("image", "image", stack.enter_context(open_volume(image)), None, {}))
    if maps:
        array = stack.enter_context(open_volume(maps))
        if array.ndim != 4:
            raise VolumeError(f"{maps}: expected (C, Z, Y, X) probability maps, got shape {tuple(array.shape)}")
        for c, name in enumerate(("foreground", "contour")[:array.shape[0]]):
            layers.append((name, "image", Channel(array, c), _shader(MAP_COLOURS[c]), {}))
    for name, spec in (("instances", instances), ("ground truth", gt)):
        if spec:
            layers.append((name, "segmentation", stack.enter_context(open_volume(spec)), None, {}))
    if not layers:
        raise VolumeError("nothing to view: give --image, --instances, --maps or --gt (or --config-file)")
    shapes = {tuple(array.shape[-3:]) for _, _, array, _, _ in layers}
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
        for name, kind, array, shader, options in layers:
            volume = _local_volume(neuroglancer, array, dims, kind, scales)
            if kind == "segmentation":
                state.layers[name] = _segmentation_layer(neuroglancer, volume, array, shape, options)
            else:
                state.layers[name] = neuroglancer.ImageLayer(source=volume, **({"shader": shader} if shader else {}))
            state.layers[name].visible = options.get("visible", True)
    return viewer


class CropMeshes:
    """3D meshes of single segments of a lazy label volume, with memory set by one segment's crop.

    neuroglancer's own on-demand meshing needs the whole volume as one in-memory array; here each
    request reads only the segment's bounding box (plus one voxel) and runs marching cubes
    (scikit-image) on it. The bounding boxes come from one slab-by-slab pass of the per-label sums
    (:func:`connectomics.measure.sums.block_sums`) at the first request. Vertices are in metres, in
    the volume's (z, y, x) order, as neuroglancer's legacy mesh format wants.
    """

    def __init__(self, array, voxel_size, slab=32):
        self.array, self.voxel = array, np.asarray(voxel_size or (1.0, 1.0, 1.0), np.float64)
        self.slab, self.boxes = slab, None

    def _find_boxes(self):
        from connectomics.measure.sums import block_sums, merge_sums

        shape = self.array.shape
        logger.info("finding the segments' bounding boxes for meshes (one pass over %s voxels)", shape)
        parts = [block_sums(np.asarray(self.array[z:z + self.slab]), (z, 0, 0)) for z in range(0, shape[0], self.slab)]
        sums = merge_sums(parts)
        self.boxes = {int(i): tuple((int(sums[f"min_{a}"][k]), int(sums[f"max_{a}"][k]) + 1) for a in "zyx")
                      for k, i in enumerate(sums["ids"])}

    def mesh(self, object_id):
        """The legacy-format mesh (bytes) of ``object_id``, or None if it is not in the volume."""
        import struct

        from skimage.measure import marching_cubes

        if self.boxes is None:
            self._find_boxes()
        box = self.boxes.get(int(object_id))
        if box is None:
            return None
        lo = [max(0, a - 1) for a, _ in box]
        hi = [min(n, b + 1) for (_, b), n in zip(box, self.array.shape)]
        crop = np.asarray(self.array[tuple(slice(a, b) for a, b in zip(lo, hi))]) == object_id
        verts, faces, _, _ = marching_cubes(np.pad(crop, 1).astype(np.float32), 0.5)
        verts = (verts - 1 + np.asarray(lo)) * self.voxel * 1e-9
        return struct.pack("<I", len(verts)) + verts.astype("<f4").tobytes() + faces.astype("<u4").tobytes()


def _local_volume(neuroglancer, array, dims, kind, voxel_size):
    """A LocalVolume; a segmentation one meshes a segment from its crop (:class:`CropMeshes`)."""
    if kind != "segmentation":
        return neuroglancer.LocalVolume(data=array, dimensions=dims, volume_type=kind)

    class CroppedMeshVolume(neuroglancer.LocalVolume):
        def get_object_mesh(self, object_id):
            data = self.meshes.mesh(object_id)
            if data is None:
                from neuroglancer.local_volume import InvalidObjectIdForMesh

                raise InvalidObjectIdForMesh()
            return data

    volume = CroppedMeshVolume(data=array, dimensions=dims, volume_type=kind)
    volume.meshes = CropMeshes(array, voxel_size)
    return volume


def _segmentation_layer(neuroglancer, volume, array, shape, options):
    """Selected: ``options['segments']``, else the ids of the centre slice (each in its own colour);
    ``options['colour']``: one colour for all of them."""
    segments = options.get("segments")
    if segments is None:  # the centre of the centre slice (at most SELECT_WINDOW^2 voxels read)
        window = tuple(slice(max(0, n // 2 - SELECT_WINDOW // 2), n // 2 + SELECT_WINDOW // 2) for n in shape[1:])
        ids = np.unique(np.asarray(array[(shape[0] // 2,) + window]))
        segments = [int(i) for i in ids[ids > 0][:MAX_SELECTED]]
    layer = neuroglancer.SegmentationLayer(source=volume, segments=segments)
    if options.get("colour"):
        layer.segment_colors = {int(i): options["colour"] for i in segments}
    return layer


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
def view(image=None, instances=None, maps=None, gt=None, voxel_size=None, bind_address="127.0.0.1", port=0,
         errors=False, crumb_size=2000):
    """Context manager: the viewer of these volumes (specs), files open while it lasts. ``errors``:
    the error layers (:func:`error_layers`) instead of the plain instances and ground truth."""
    with contextlib.ExitStack() as stack:
        layers = open_layers(stack, image, instances, maps, gt)
        if errors:
            layers = [layer[:4] + (dict(layer[4], visible=False),) if layer[0] in ("instances", "ground truth")
                      else layer for layer in layers] + error_layers(stack, instances, gt, crumb_size)
        yield start_viewer(layers, voxel_size, bind_address, port)


def view_command(image=None, instances=None, maps=None, gt=None):
    """The command line that views these volumes (printed after a run)."""
    parts = ["python scripts/view.py"] + [f"--{flag} {spec}" for flag, spec in
                                          (("image", image), ("instances", instances), ("maps", maps), ("gt", gt)) if spec]
    return " ".join(parts)
