"""Logging setup: console plus an optional ``log.txt`` in the output folder."""
import logging
import os
import sys

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(folder=None, level=logging.INFO, filename="log.txt"):
    """Configure the root logger once; add a file handler in ``folder`` if given."""
    root = logging.getLogger()
    root.setLevel(level)
    if not any(getattr(h, "_connectomics", None) == "console" for h in root.handlers):
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
        console._connectomics = "console"
        root.addHandler(console)
    if folder:
        os.makedirs(folder, exist_ok=True)
        path = os.path.abspath(os.path.join(folder, filename))
        if not any(getattr(h, "baseFilename", None) == path for h in root.handlers):
            handler = logging.FileHandler(path)
            handler.setFormatter(logging.Formatter(_FORMAT))
            root.addHandler(handler)
    for noisy in ("matplotlib", "PIL", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return root
