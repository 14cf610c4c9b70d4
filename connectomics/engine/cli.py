"""How the command-line entry points end: one line a user can act on, and an exit code.

* an error in the user's input or files (a bad key or value, a missing, corrupt or unwritable
  file, results of other settings, a mismatched checkpoint): one ``ERROR`` line naming the
  key, file or value; exit 2; no traceback;
* Ctrl-C (SIGINT) or SIGTERM: one line saying what was kept and that the same command resumes;
  exit 130 / 143.

Set ``CONNECTOMICS_TRACEBACK=1`` to get the traceback as well (for bug reports).
"""
import contextlib
import os
import signal


class _Status:
    code = 0


def user_errors():
    """The exception types that mean "fix your input" (importing them loads the package's stages)."""
    from connectomics.errors import USER_ERRORS

    return USER_ERRORS


def os_error_message(err):
    """``'cannot use PATH: reason'`` for an OSError raised by the file system (a file where a folder
    is needed is named as such)."""
    import errno

    if err.filename is None:
        return str(err)
    name = os.fspath(err.filename)
    if err.errno in (errno.EEXIST, errno.ENOTDIR):
        parent = name
        while parent and not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if parent and os.path.isfile(parent):
            return f"cannot write {name}: {parent} is a file, not a folder"
    target = name if err.filename2 is None else f"{name} -> {os.fspath(err.filename2)}"
    return f"cannot use {target}: {err.strerror or err}"


def user_error_message(err):
    if isinstance(err, OSError) and err.errno is not None:
        return os_error_message(err)
    return f"{type(err).__name__}: {err}"


def _interrupted_message(err, resume_hint):
    signum = getattr(err, "signum", signal.SIGINT)
    name = signal.Signals(signum).name
    iteration = getattr(err, "iteration", None)
    kept = f" at iteration {iteration}, checkpoint saved" if iteration is not None else ""
    hint = "; run the same command again to resume" if resume_hint else ""
    return f"interrupted by {name}{kept}{hint}", 128 + int(signum)


def _raise_on_sigterm(signum, frame):
    raise KeyboardInterruptFromSignal(signum)


class KeyboardInterruptFromSignal(KeyboardInterrupt):
    """SIGTERM turned into the KeyboardInterrupt path: outputs finish their cleanup."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def report_errors(logger, resume_hint=False, extra=()):
    """Run the body; turn user errors (and ``extra`` types), OSErrors and interrupts into one
    logged line and ``status.code`` (2, or 128 + the signal). Yields the status object."""
    import threading

    status = _Status()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm) if main_thread else None
    try:
        yield status
    except KeyboardInterrupt as err:
        message, status.code = _interrupted_message(err, resume_hint)
        logger.error("%s", message)
        _maybe_traceback()
    except user_errors() + tuple(extra) + (OSError,) as err:
        logger.error("%s", user_error_message(err))
        status.code = 2
        _maybe_traceback()
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _maybe_traceback():
    if os.environ.get("CONNECTOMICS_TRACEBACK"):
        raise


def add_scheduler_argument(parser, what="inference"):
    """``--scheduler [ADDRESS]``, the same in every command that can run blockwise on Dask."""
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None, nargs="?", const="local",
                        help=f"{what}: run blockwise on Dask (zarr maps, global instance ids): 'local' (a local "
                             "cluster, one worker per core; the default of a bare --scheduler), 'inprocess', or a "
                             "scheduler address tcp://host:port; overrides SYSTEM.SCHEDULER")


def scheduler_opts(args):
    """The config overrides of ``--scheduler``: ``['SYSTEM.SCHEDULER', ADDRESS]`` when given."""
    return ["SYSTEM.SCHEDULER", args.scheduler] if args.scheduler else []


def run_command(run, args, logger, resume_hint=False, extra=(), log_setup=True):
    """How every entry point ends: logging set up, ``run(args)`` called, its return value the exit
    code (None: 0); user errors (and ``extra`` types) as one ERROR line and exit 2, interrupts as
    one line and 130 / 143 (``resume_hint``: say that the same command resumes)."""
    if log_setup:
        from connectomics.utils.logging import setup_logging

        setup_logging()
    with report_errors(logger, resume_hint=resume_hint, extra=extra) as status:
        status.code = run(args) or 0
    return status.code
