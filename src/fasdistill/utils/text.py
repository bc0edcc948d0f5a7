"""Third-party exception text made fit for a one-line user message.

Libraries put terminal colour codes (PyTorch wraps advice in ``ESC[1m``) and
multi-paragraph advice into their exceptions. A message we echo keeps one plain
line of their text: the part that says what went wrong.
"""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences (colours, bold, cursor moves)."""
    return _ANSI.sub("", text)


def first_line(error: BaseException | str) -> str:
    """The first non-empty line of an exception's text, plain; its type name if it has none."""
    text = strip_ansi(str(error))
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__ if isinstance(error, BaseException) else ""


def one_line(error: BaseException | str, limit: int = 300) -> str:
    """All of an exception's text on one plain line, cut at ``limit`` characters."""
    text = " ".join(strip_ansi(str(error)).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def failure_reason(error: BaseException, limit: int = 200) -> str:
    """Why a part failed, as one plain line for a report cell or a closing line.

    Our own errors (:class:`~fasdistill.errors.InputError`) already say what is wrong
    in their first line, which is kept as it is. Any other error keeps its type name
    and its whole text on one line, cut at ``limit`` characters: runtimes split a
    C++ message over lines (ONNX Runtime puts the cause after its error code).
    """
    from fasdistill.errors import InputError

    if isinstance(error, InputError):
        return first_line(error) if str(error).strip() else "failed"
    text = one_line(error, limit)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
