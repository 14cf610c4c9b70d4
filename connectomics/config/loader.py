"""Load a config: defaults <- YAML (with ``_BASE_``) <- ``--opts``, then validate and freeze.

Every failure raises :class:`ConfigError` with the key, the value and what was
expected; an unknown key names the closest valid one.
"""
import ast
import difflib
import logging
import os

import yaml
from yacs.config import CfgNode as CN

from connectomics.config.defaults import COMPAT_KEYS, get_cfg_defaults
from connectomics.config.paths import resolve_paths
from connectomics.config.validate import validate_cfg
from connectomics.errors import ConfigError

logger = logging.getLogger(__name__)



def _all_keys(node, prefix=""):
    keys = []
    for key, value in node.items():
        full = f"{prefix}{key}"
        keys.append(full)
        if isinstance(value, CN):
            keys.extend(_all_keys(value, full + "."))
    return keys


def _unknown_key_error(full_key, schema, source):
    valid = _all_keys(schema)
    close = difflib.get_close_matches(full_key, valid, n=1, cutoff=0.5)
    if not close:  # a typo in the leaf name only: compare leaves
        leaf = full_key.rsplit(".", 1)[-1]
        leaves = {k.rsplit(".", 1)[-1]: k for k in valid}
        near = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.6)
        close = [leaves[near[0]]] if near else []
    hint = f"; did you mean {close[0]}?" if close else ""
    return ConfigError(f"unknown config key {full_key} (in {source}){hint}")


def _coerce(value, default, full_key, source):
    """Return ``value`` converted to the type of ``default``, or raise ConfigError."""
    if default is None:
        return value
    if value is None:
        raise ConfigError(f"config key {full_key} (in {source}) expects a {type(default).__name__}, got null "
                          "(an empty value); give a value or leave the key out")
    if isinstance(value, str) and not isinstance(default, str):
        value = _parse_opt_value(value)  # YAML reads 1e-4 and (1, 2) as strings
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return type(default)(value)
    elif isinstance(default, str) and isinstance(value, str):
        return value
    raise ConfigError(
        f"config key {full_key} (in {source}) expects a {type(default).__name__}, "
        f"got {value!r} ({type(value).__name__})"
    )


def merge_dict(cfg, data, source, prefix=""):
    """Merge a nested dict into ``cfg`` key by key, checking names and types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at {prefix or 'the top level'}, got {data!r}")
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in cfg:
            raise _unknown_key_error(full, get_cfg_defaults(), source)
        if isinstance(cfg[key], CN):
            merge_dict(cfg[key], {} if value is None else value, source, full + ".")  # an empty section: nothing
        else:
            cfg[key] = _coerce(value, cfg[key], full, source)


def _read_yaml(path, seen=()):
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    if os.path.abspath(path) in seen:
        raise ConfigError(f"_BASE_ cycle through {path}")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected config sections (SYSTEM:, MODEL:, ...) at the top level, got a "
                          f"{type(data).__name__}")
    base = data.pop("_BASE_", None)
    chain = []
    if base:
        base_path = base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base)
        chain = _read_yaml(base_path, seen + (os.path.abspath(path),))
    return chain + [(path, data)]


def _parse_opt_value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a plain string such as a path or a name


def merge_opts(cfg, opts):
    """Merge ``[KEY, VALUE, KEY, VALUE, ...]`` command-line overrides."""
    if len(opts) % 2:
        raise ConfigError(f"--opts needs KEY VALUE pairs; got an odd number of items: {opts}")
    for key, text in zip(opts[0::2], opts[1::2]):
        node, parts = cfg, key.split(".")
        for part in parts[:-1]:
            if part not in node or not isinstance(node[part], CN):
                raise _unknown_key_error(key, get_cfg_defaults(), "--opts")
            node = node[part]
        if parts[-1] not in node or isinstance(node[parts[-1]], CN):
            raise _unknown_key_error(key, get_cfg_defaults(), "--opts")
        value = _parse_opt_value(text)
        if isinstance(node[parts[-1]], str) and not isinstance(value, str):
            value = text  # "--opts DATASET.IMAGE_NAME 123" means the string
        node[parts[-1]] = _coerce(value, node[parts[-1]], key, "--opts")


def fill_inference_defaults(cfg):
    """Make INFERENCE keys explicit: empty ones take the MODEL / DATASET values."""
    inf = cfg.INFERENCE
    if not cfg.MODEL.OUTPUT_SIZE:
        cfg.MODEL.OUTPUT_SIZE = list(cfg.MODEL.INPUT_SIZE)
    if not inf.INPUT_SIZE:
        inf.INPUT_SIZE = list(cfg.MODEL.INPUT_SIZE)
    if not inf.OUTPUT_SIZE:
        inf.OUTPUT_SIZE = list(inf.INPUT_SIZE)
    if not inf.PAD_SIZE:
        inf.PAD_SIZE = list(cfg.DATASET.PAD_SIZE)
    if not inf.INPUT_PATH:
        inf.INPUT_PATH = cfg.DATASET.INPUT_PATH
    if not inf.OUTPUT_PATH:  # results of a run live in its folder (and follow its newest model)
        inf.OUTPUT_PATH = os.path.join(cfg.DATASET.OUTPUT_PATH, "inference")


DEVICE_KEY = "_DEVICE_"  # YAML: per-device settings, applied after the YAML chain and before --opts
DEVICE_KINDS = ("cpu", "cuda")


def device_kind(cfg):
    """'cuda' when the run will use a GPU (SYSTEM.DEVICE, NUM_GPUS and what the machine has), else 'cpu'."""
    if cfg.SYSTEM.DEVICE == "cpu" or cfg.SYSTEM.NUM_GPUS == 0:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def apply_device_settings(cfg, by_device, opts):
    """Merge the ``_DEVICE_`` section of each YAML (``{cpu: {...}, cuda: {...}}``) for the device the
    run will use, so that a template, not its user, knows the settings that suit the machine.
    ``--opts`` still override them (they are merged after)."""
    probe = cfg.clone()
    merge_opts(probe, list(opts or ()))
    kind = device_kind(probe)
    for path, sections in by_device:
        if not isinstance(sections, dict) or set(sections) - set(DEVICE_KINDS):
            raise ConfigError(f"{path}: {DEVICE_KEY} must map {' / '.join(DEVICE_KINDS)} to config sections, got "
                              f"{sections!r}")
        chosen = sections.get(kind) or {}
        merge_dict(cfg, chosen, f"{path} ({DEVICE_KEY}.{kind})")
        if chosen:
            logger.info("%s: the %s settings of %s apply (%s)", path, kind, DEVICE_KEY, ", ".join(sorted(chosen)))


_WARNED = set()


def warn_compat_keys(cfg):
    """One warning per process for each unused compatibility key (``COMPAT_KEYS``) set to a value."""
    defaults = get_cfg_defaults()
    for key in COMPAT_KEYS:
        section, name = key.split(".")
        if cfg[section][name] != defaults[section][name] and key not in _WARNED:
            _WARNED.add(key)
            logger.warning("config key %s = %r is accepted for compatibility with the predecessor's configs but "
                           "has no effect here", key, cfg[section][name])


def load_cfg(config_file=None, opts=(), freeze=True):
    """Defaults, then the YAML chain (and its ``_DEVICE_`` sections for this machine), then ``opts``;
    paths resolved; validated.

    Returns a frozen :class:`yacs.config.CfgNode` (mutable if ``freeze=False``).
    """
    cfg = get_cfg_defaults()
    by_device = []
    if config_file:
        for path, data in _read_yaml(config_file):
            device_sections = data.pop(DEVICE_KEY, None)
            merge_dict(cfg, data, path)
            if device_sections is not None:
                by_device.append((path, device_sections))
    if by_device:
        apply_device_settings(cfg, by_device, opts)
    merge_opts(cfg, list(opts or ()))
    warn_compat_keys(cfg)
    fill_inference_defaults(cfg)
    try:
        resolve_paths(cfg)
        validate_cfg(cfg)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if freeze:
        cfg.freeze()
    return cfg


def save_cfg(cfg, folder, name="config.yaml"):
    """Write the merged config to ``folder/name`` (atomically) and return the path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(cfg.dump())
    os.replace(tmp, path)
    return path
