"""gocoder: train small hierarchical-recursive models that write Go, checked by Go's own parser."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gocoder")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"


class GocoderError(Exception):
    """Bad input or usage: the CLI prints the message on one line and exits 2.

    The message names the file and line, or the option, at fault.
    """
