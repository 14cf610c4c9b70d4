"""connectomics: mitochondria instance segmentation of 3D electron-microscopy volumes.

One subpackage per stage: ``config``, ``data``, ``model``, ``losses``, ``engine``,
``inference``, ``postprocess``, ``evaluation``, ``utils``.
"""
__version__ = "0.1.0"
