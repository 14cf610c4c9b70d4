"""Per-block done markers of a resumable output or work folder, with the settings that made them.

Every store and work folder records the settings that made it; a rerun with the same settings
resumes at the first block without a marker, one with other settings is refused unless told to
overwrite. Markers are written by rename, after the block's data is in its store.
"""
import json
import os
import shutil

import numpy as np

from connectomics.errors import ResumeError
from connectomics.storage.paths import temporary_name
from connectomics.storage.settings import difference, normalise


class Markers:
    """Per-block done markers of the stages of one run, in ``folder/<stage>/z_y_x.npz``.

    A marker holds the block's small result (counts, pairs) and is written by
    rename, after the block's data is in its store: a block without a marker is
    redone from scratch. ``settings`` are kept in ``folder/settings.json``;
    a folder from a run with other settings is refused unless ``overwrite``.
    """

    def __init__(self, folder, settings, overwrite=False):
        self.folder = folder
        settings = normalise(settings)
        path = os.path.join(folder, "settings.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
            diff = difference(old, settings)
            if diff and not overwrite:
                raise ResumeError(f"work folder {folder} is from a run with other settings ({diff}); pass "
                                  "--overwrite to start again, or delete that folder")
            if diff:
                shutil.rmtree(folder)
        os.makedirs(folder, exist_ok=True)
        if not os.path.exists(path):
            tmp = temporary_name(path)
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(settings, f, indent=1, sort_keys=True)
            os.replace(tmp, path)

    def path(self, stage, index=None):
        folder = os.path.join(self.folder, stage)
        return folder if index is None else os.path.join(folder, "_".join(str(int(i)) for i in index) + ".npz")

    def done(self, stage):
        """The set of block indices with a marker."""
        folder = self.path(stage)
        if not os.path.isdir(folder):
            return set()
        return {tuple(int(i) for i in name[:-4].split("_")) for name in os.listdir(folder)
                if name.endswith(".npz") and not name.startswith(".")}

    def write(self, stage, index, result):
        os.makedirs(self.path(stage), exist_ok=True)
        path = self.path(stage, index)
        tmp = temporary_name(path) + ".npz"  # np.savez appends .npz to names without it
        np.savez(tmp, **{k: np.asarray(v) for k, v in (result or {}).items()})
        os.replace(tmp, path)

    def read(self, stage, index):
        with np.load(self.path(stage, index)) as data:
            return {k: data[k] for k in data.files}

    def save_array(self, name, array):
        """Store a client-side table (e.g. a lookup table) atomically; :meth:`load_array` reads it."""
        path = os.path.join(self.folder, name + ".npy")
        tmp = temporary_name(path) + ".npy"
        np.save(tmp, array)
        os.replace(tmp, path)
        return path

    def load_array(self, name):
        path = os.path.join(self.folder, name + ".npy")
        return np.load(path) if os.path.exists(path) else None
