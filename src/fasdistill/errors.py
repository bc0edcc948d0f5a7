"""Exceptions that carry a message fit to show a user as-is.

The CLI prints ``str(error)`` on one line and exits non-zero, so every message
names the file or field at fault and, where it can, the fix.
"""


class FasDistillError(Exception):
    """Base class for errors the CLI reports without a traceback."""


class InputError(FasDistillError, ValueError):
    """A user-supplied file, argument or field is malformed."""
