"""Model weights shipped with the package, named ``shipped:<name>`` in ``MODEL.PRE_MODEL``.

They are made from our synthetic data alone (so they can ship); each ``<name>.pth`` holds the
state dict, the architecture and how it was made (``made_with``: the command, iterations, time).
``scripts/export_weights.py`` writes one from a training checkpoint.
"""
import os

FOLDER = os.path.dirname(os.path.abspath(__file__))
PREFIX = "shipped:"


def available():
    """Names of the shipped weights."""
    return sorted(name[:-4] for name in os.listdir(FOLDER) if name.endswith(".pth"))


def shipped_path(spec):
    """The file of ``shipped:<name>`` (or ``<name>``); ValueError naming the available ones if unknown."""
    name = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    path = os.path.join(FOLDER, name + ".pth")
    if not os.path.exists(path):
        raise ValueError(f"no shipped weights {name!r}; available: {', '.join(available()) or 'none'}")
    return path
