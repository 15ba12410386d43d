"""While ``harness run`` runs, what the libraries write goes to the run's log, not the terminal.

The terminal shows the harness's own progress line, its notes and its errors. What the libraries
it drives write (lm-eval's warnings such as "Task 'gsm8k' … overrides existing task", datasets'
"Generating test split" bars, transformers' warnings, the bars lm-eval draws with tqdm, Python
warnings) goes to ``OUT/harness.log``, appended; log records and warnings with a timestamp.

That output takes three ways, each closed its own way for the block:

- progress bars that have a switch of their own (datasets', huggingface_hub's, transformers') are
  switched off: a bar in a log file is only noise;
- log records go to one handler on the root logger that writes the log. The handlers libraries put
  on their own loggers to write to the console (transformers' and datasets' default handlers,
  lm-eval's when it sets up logging) are taken off and their loggers made to propagate, and Python
  warnings become log records (:func:`logging.captureWarnings`);
- whatever is written to ``sys.stderr`` or ``sys.stdout`` (tqdm bars without a switch, as lm-eval's
  per-task bars, ``print``, the last-resort log handler) lands in the log, because both name it; so
  does what child processes and C code write to file descriptor 2, which points at the log too.

The harness's displays keep the terminal because they draw on a stream of their own, a duplicate of
stderr's descriptor made before the block (:func:`tokenpo.core.progress.own_stderr`). Everything is
put back when the block ends; a handler a library made during the block (with the log as its
stream) then writes to stderr again. Standard output's descriptor is left alone: child processes'
standard output is theirs to capture.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from tokenpo.core import progress

LOG = "harness.log"  # in the run's output folder
RECORD_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def library_output_to(path: Path) -> Iterator[Path]:
    """Send the libraries' output to ``path`` (appended) for the block; say once where it goes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    progress.note(f"library messages and warnings: {path}")
    with contextlib.ExitStack() as undo:
        log = undo.enter_context(open(path, "a", encoding="utf-8", errors="backslashreplace", buffering=1))
        undo.callback(_return_to_stderr, log)  # undone last: once sys.stderr is the terminal's again
        _switch_off_library_bars(undo)
        _records_to(log, undo)
        _descriptor_to(2, log, undo)
        undo.enter_context(contextlib.redirect_stdout(log))
        undo.enter_context(contextlib.redirect_stderr(log))
        yield path


def _switch_off_library_bars(undo: contextlib.ExitStack) -> None:
    import datasets
    from huggingface_hub import utils as hub
    from transformers.utils import logging as transformers_logging

    if not datasets.are_progress_bars_disabled():
        datasets.disable_progress_bars()
        undo.callback(datasets.enable_progress_bars)
    if not hub.are_progress_bars_disabled():
        hub.disable_progress_bars()
        undo.callback(hub.enable_progress_bars)
    if transformers_logging.is_progress_bar_enabled():
        transformers_logging.disable_progress_bar()
        undo.callback(transformers_logging.enable_progress_bar)


def _records_to(log: TextIO, undo: contextlib.ExitStack) -> None:
    """Every log record of level INFO and up, and every Python warning, to ``log`` with a timestamp."""
    root = logging.getLogger()
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter(RECORD_FORMAT))
    kept_handlers, kept_level = root.handlers[:], root.level
    root.handlers = [handler]
    root.setLevel(min(kept_level, logging.INFO))
    undo.callback(setattr, root, "handlers", kept_handlers)
    undo.callback(root.setLevel, kept_level)
    for logger in _loggers():
        console = [h for h in logger.handlers if _writes_to_console(h)]
        for found in console:
            logger.removeHandler(found)
            undo.callback(logger.addHandler, found)
        if console and not logger.propagate:
            logger.propagate = True
            undo.callback(setattr, logger, "propagate", False)
    if not _capturing_warnings():
        logging.captureWarnings(True)
        undo.callback(logging.captureWarnings, False)


def _descriptor_to(descriptor: int, log: TextIO, undo: contextlib.ExitStack) -> None:
    """Point the file descriptor at ``log``: what child processes (lm-eval runs ``git describe``, which
    says "fatal: not a git repository" outside a clone) and C code write there lands in the log."""
    sys.stderr.flush()
    try:
        kept = os.dup(descriptor)
    except OSError:  # closed (a daemon's): nothing writes there
        return
    os.dup2(log.fileno(), descriptor)

    def restore() -> None:
        sys.stderr.flush()
        os.dup2(kept, descriptor)
        os.close(kept)

    undo.callback(restore)


def _loggers() -> list[logging.Logger]:
    return [logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)]


def _writes_to_console(handler: logging.Handler) -> bool:
    """A stream handler that is not a file handler: what libraries attach to show records to the user."""
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)


def _capturing_warnings() -> bool:
    return getattr(warnings.showwarning, "__module__", None) == logging.__name__


def _return_to_stderr(log: TextIO) -> None:
    """Handlers libraries made during the block took the log as their stream: give them stderr again."""
    for logger in [logging.getLogger(), *_loggers()]:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is log:
                handler.setStream(sys.stderr)
