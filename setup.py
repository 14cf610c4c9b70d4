"""Build script: the pure-Python package plus every Cython kernel in cython_ext/.

Each ``cython_ext/<name>.pyx`` becomes the extension module
``connectomics._ext.<name>``; nothing is compiled at run time.
"""
import os
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

HERE = Path(__file__).parent

extensions = [
    Extension(
        f"connectomics._ext.{pyx.stem}",
        [str(pyx.relative_to(HERE))],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
        language="c++",
    )
    for pyx in sorted((HERE / "cython_ext").glob("*.pyx"))
    # CONNECTOMICS_EXT=name1,name2 builds only those kernels (handy while developing one)
    if not os.environ.get("CONNECTOMICS_EXT") or pyx.stem in os.environ["CONNECTOMICS_EXT"].split(",")
]

setup(
    name="connectomics",
    version="0.1.0",
    description="3D EM mitochondria instance segmentation: residual U-Nets, "
    "chunked inference, Cython post-processing and a fast AP-75 evaluator.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["connectomics", "connectomics.*"]),
    package_data={"connectomics.weights": ["*.pth"]},  # weights made from synthetic data (MODEL.PRE_MODEL shipped:...)
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ),
    install_requires=[
        # A range, not a pin: GPU users keep the CUDA build they already have.
        "torch>=2.1,<3",
        "numpy>=1.24",
        "scipy>=1.10",
        "h5py>=3.8",
        "yacs>=0.1.8",
        "scikit-image>=0.21",
        "connected-components-3d>=3.12",
        "fastremap>=1.14",
        "waterz>=0.10",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "tifffile>=2023.1",
        "tensorboard>=2.12",
        "dask[distributed]>=2024.1",  # blockwise runs: a local cluster or any scheduler
        "zarr>=3.0",  # the blockwise store
        "ome-zarr>=0.12",  # OME-Zarr (NGFF 0.4) metadata of the outputs
        "neuroglancer>=2.40",  # scripts/view.py: the viewer and its local server (no internet needed)
        "selenium>=4.20",  # scripts/view.py --screenshot: headless Chromium
        "kimimaro>=4",  # skeleton length and branches of each instance (scripts/measure.py)
    ],
    # an NGFF validator and a matching-metrics reference that are not ours
    extras_require={"test": ["pytest>=7", "ome-zarr-models>=1.0", "stardist>=0.9"]},
    zip_safe=False,
)
