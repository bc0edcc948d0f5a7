"""Keep third-party noise off the terminal: it goes to a log file in the output folder.

Converters and runtimes print from Python and from C++ (pnnx prints about 50 lines
per ncnn conversion; absl, oneDNN and cpuinfo write to file descriptor 2; torchao
logs a failed optional load; LiteRT says it converted "in training mode"). Inside
:func:`third_party_to_log` both file descriptors 1 and 2, ``sys.stdout``,
``sys.stderr``, Python warnings and the root logger go to the log file, appended,
and the context yields a ``say(line)`` that still prints to the real terminal:
fasdistill's own progress and results are printed through it.

It changes process-wide state (file descriptors), so it belongs in command-line
entry points, never inside a library function. Processes started inside it (a
spawn pool) inherit the redirected descriptors, so their noise is logged too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

Say = Callable[[str], None]


def _fileno(stream: TextIO) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None  # e.g. a notebook's stream: only Python-level writes can be caught


@contextlib.contextmanager
def third_party_to_log(log_path: str | os.PathLike[str]) -> Iterator[Say]:
    """Route everything printed inside the block to ``log_path``; yield a terminal printer."""
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()
    log = path.open("a", buffering=1, encoding="utf-8", errors="replace")
    out_fd, err_fd = _fileno(sys.__stdout__), _fileno(sys.__stderr__)
    saved = {fd: os.dup(fd) for fd in (out_fd, err_fd) if fd is not None}
    terminal = (
        os.fdopen(os.dup(saved[out_fd]), "w", buffering=1, encoding="utf-8", errors="replace")
        if out_fd in saved
        else sys.stdout
    )
    old_streams = (sys.stdout, sys.stderr)
    handler = logging.StreamHandler(log)
    root = logging.getLogger()
    # Loggers configured before the block hold the old stderr object; its descriptor
    # 2 now points at the log too, so their lines land there as well.
    for fd in saved:
        os.dup2(log.fileno(), fd)
    sys.stdout = sys.stderr = log
    root.addHandler(handler)
    old_showwarning = warnings.showwarning

    def to_log(message, category, filename, lineno, file=None, line=None) -> None:
        log.write(warnings.formatwarning(message, category, filename, lineno, line))

    warnings.showwarning = to_log

    def say(line: str) -> None:
        terminal.write(f"{line}\n")
        terminal.flush()

    try:
        yield say
    finally:
        warnings.showwarning = old_showwarning
        root.removeHandler(handler)
        sys.stdout, sys.stderr = old_streams
        log.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        if terminal is not sys.stdout and terminal is not old_streams[0]:
            terminal.close()
        log.close()
