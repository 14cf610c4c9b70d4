"""Differences between two configs (or settings dicts holding config sections), key by key."""
import json


def config_differences(old, new, prefix="", defaults=None):
    """``['KEY: old -> new', ...]`` between two nested dicts (e.g. a saved config and the current one).

    A config key missing from ``old`` (written before the key existed) counts as its default
    value, so upgrading does not make every saved run or table differ.
    """
    if defaults is None:
        from connectomics.config.defaults import get_cfg_defaults

        defaults = json.loads(json.dumps(get_cfg_defaults()))
    out = []
    for key in sorted(set(old) | set(new)):
        default = defaults.get(key) if isinstance(defaults, dict) else None
        a, b = old.get(key, default), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{key}.", default if isinstance(default, dict) else {})
        elif _plain(a) != _plain(b):
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def _plain(value):
    """Tuples and lists compare equal (YAML reads tuples back as lists)."""
    return json.loads(json.dumps(value))
