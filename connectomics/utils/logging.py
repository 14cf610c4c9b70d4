"""Logging setup: console plus an optional ``log.txt`` in the output folder."""
import logging
import os
import sys

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(folder=None, level=logging.INFO, filename="log.txt", console=True):
    """Configure the root logger once; add a file handler in ``folder`` if given.

    ``console`` False keeps only warnings and errors on the console (MONITOR.LOG_OPT[0] = 0).
    """
    root = logging.getLogger()
    root.setLevel(level)
    handler = next((h for h in root.handlers if getattr(h, "_connectomics", None) == "console"), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
        handler._connectomics = "console"
        root.addHandler(handler)
    handler.setLevel(logging.NOTSET if console else logging.WARNING)
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
