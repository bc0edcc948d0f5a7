"""fasdistill: distil face anti-spoofing teachers into compact mobile students."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fasdistill")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
