"""Config: the schema (``defaults``), loading and overrides (``loader``), checks (``validate``)."""
from connectomics.config.defaults import get_cfg_defaults
from connectomics.config.loader import ConfigError, load_cfg, save_cfg
from connectomics.config.paths import split_names
from connectomics.config.validate import check_input_files, target_channels

__all__ = [
    "ConfigError", "check_input_files", "get_cfg_defaults", "load_cfg", "save_cfg",
    "split_names", "target_channels",
]
