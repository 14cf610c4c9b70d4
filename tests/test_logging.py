"""MONITOR.LOG_OPT: console and log.txt switches of setup_logging."""
import logging

from connectomics.utils.logging import setup_logging


def _console():
    return next(h for h in logging.getLogger().handlers if getattr(h, "_connectomics", None) == "console")


def test_console_off_keeps_warnings_and_file_gets_everything(tmp_path):
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        setup_logging(tmp_path, console=False)
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "info line", None, None)
        assert record.levelno < _console().level == logging.WARNING  # INFO lines are not printed
        logging.getLogger("connectomics.test").info("into the file")
        for h in root.handlers:
            h.flush()
        assert "into the file" in (tmp_path / "log.txt").read_text()
        setup_logging(console=True)
        assert _console().level == logging.NOTSET
    finally:
        for h in list(root.handlers):
            if h not in before:
                root.removeHandler(h)
                h.close()
            else:
                h.setLevel(logging.NOTSET)


def test_no_folder_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    setup_logging(None)
    assert not (tmp_path / "log.txt").exists()
