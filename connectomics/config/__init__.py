"""Config: the schema (``defaults``), loading and overrides (``loader``), checks (``validate``)."""
from connectomics.config.defaults import get_cfg_defaults
from connectomics.config.loader import load_cfg, save_cfg
from connectomics.config.validate import check_input_files
from connectomics.errors import ConfigError

__all__ = [
    "ConfigError", "check_input_files", "get_cfg_defaults", "load_cfg", "save_cfg",
]
