"""Path keys of the config and how relative paths resolve.

Rule (documented in the README): ``$VAR`` / ``${VAR}`` and ``~`` are expanded;
a relative path is joined to ``SYSTEM.ROOT_DIR``, which defaults to the current
working directory. ``*_NAME`` keys are first joined to their ``INPUT_PATH``. ``MODEL.PRE_MODEL shipped:<name>`` names
weights shipped in ``connectomics/weights``.
Several volumes are joined by ``@``; ``file.h5:key`` names a dataset.
"""
import os
import re

from connectomics.storage.paths import parse_spec, split_names
from connectomics.weights import shipped_path

_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")

# (name keys, folder key that prefixes them)
_NAMED_GROUPS = (
    (("DATASET.IMAGE_NAME", "DATASET.LABEL_NAME", "DATASET.VALID_MASK_NAME",
      "DATASET.VAL_IMAGE_NAME", "DATASET.VAL_LABEL_NAME"), "DATASET.INPUT_PATH"),
    (("INFERENCE.IMAGE_NAME",), "INFERENCE.INPUT_PATH"),
)
_PLAIN_KEYS = ("DATASET.OUTPUT_PATH", "INFERENCE.OUTPUT_PATH", "EVAL.GT_NAME", "MODEL.PRE_MODEL", "BLOCKWISE.WORK_DIR")


def _get(cfg, key):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _set(cfg, key, value):
    parts = key.split(".")
    node = cfg
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def expand(path):
    """``$VAR`` and ``~`` expanded; empty stays empty."""
    return os.path.expanduser(os.path.expandvars(path)) if path else path


def absolute(path, root):
    """``path`` expanded and joined to ``root`` when relative; empty stays empty."""
    path = expand(path)
    if not path:
        return path
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(root, path))


def check_variables(key, value):
    """ValueError if ``value`` (a path key's value) names an environment variable that is not set:
    it would otherwise stay in the path as a folder literally called ``$VAR``."""
    for match in _VARIABLE.finditer(value or ""):
        name = match.group(1) or match.group(2)
        if name not in os.environ:
            raise ValueError(f"config key {key} = {value!r}: environment variable ${name} is not set; "
                             f"export {name}=... or give the path itself")


def resolve_paths(cfg):
    """Rewrite every path key of ``cfg`` (mutable) to an absolute path (ValueError for an unset ``$VAR``)."""
    for key in ("SYSTEM.ROOT_DIR",) + tuple(k for names, folder in _NAMED_GROUPS for k in names + (folder,)) \
            + _PLAIN_KEYS:
        check_variables(key, _get(cfg, key))
    root = expand(cfg.SYSTEM.ROOT_DIR) or os.getcwd()
    root = os.path.abspath(root)
    cfg.SYSTEM.ROOT_DIR = root
    for names, folder_key in _NAMED_GROUPS:
        folder = absolute(_get(cfg, folder_key), root) or root
        _set(cfg, folder_key, folder)
        for key in names:
            parts = [absolute(p, folder) for p in split_names(_get(cfg, key))]
            _set(cfg, key, "@".join(parts))
    for key in _PLAIN_KEYS:
        value = _get(cfg, key)
        if key == "MODEL.PRE_MODEL" and value.startswith("shipped:"):  # weights inside the package
            try:
                _set(cfg, key, shipped_path(value))
            except ValueError as err:
                raise ValueError(f"config key MODEL.PRE_MODEL = {value!r}: {err}") from None
            continue
        _set(cfg, key, absolute(value, root))


def volume_file(spec):
    """The file part of ``file.h5:key`` (a ``:`` after the extension starts the key)."""
    return parse_spec(spec)[0]
