"""The project's exceptions: the CLI turns each into one `pydarknet: error: ...` line."""

from __future__ import annotations


class DarknetError(Exception):
    """Base class for every error pydarknet reports to a user."""


class CfgError(DarknetError):
    """A .cfg problem; the message starts with `file:line:` (darknet parser.c)."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        where = f"{path}:{line}: " if path is not None and line is not None else (
            f"{path}: " if path is not None else "")
        super().__init__(where + message)
        self.path = path
        self.line = line


class WeightsError(DarknetError):
    """A .weights problem: missing file, bad header, or float count that does not match."""


class ImageError(DarknetError):
    """An image or video that cannot be read; the message names the path."""
