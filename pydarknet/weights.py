"""Darknet .weights files: header, then float32 parameters in layer order (parser.c load_weights_upto)."""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import WeightsError


@dataclass
class Header:
    major: int = 0
    minor: int = 2
    revision: int = 0
    seen: int = 0

    @property
    def seen_is_64bit(self) -> bool:
        # parser.c: `if ((major * 10 + minor) >= 2) fread(net->seen, sizeof(uint64_t), ...)`
        return self.major * 10 + self.minor >= 2

    @property
    def transpose(self) -> bool:
        # parser.c: only [connected] weights are affected by this flag
        return self.major > 1000 or self.minor > 1000

    @property
    def nbytes(self) -> int:
        return 12 + (8 if self.seen_is_64bit else 4)


def _identity(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _read_floats(f, n: int) -> np.ndarray | None:
    """The next n little-endian floats of an open file as a new float32 array; None if the file
    ends first."""
    out = np.empty(n, "<f4")
    if f.readinto(memoryview(out).cast("B")) != out.nbytes:
        return None
    return out.astype(np.float32, copy=False)  # a no-op on little-endian machines


@dataclass(frozen=True)
class FloatsAt:
    """Where some floats of a .weights file are, to read them again later: a layer may free a
    parameter it has replaced in memory (a convolution's 3x3 weights by their Winograd
    transform) and re-read it only if it is asked for again."""

    path: str
    identity: tuple  # (device, inode, size, mtime) of the file when it was loaded
    offset: int  # bytes from the start of the file
    count: int  # floats

    def read(self, what: str = "weights") -> np.ndarray:
        """The floats again (a new float32 array); an error if the file changed since."""
        try:
            with open(self.path, "rb") as f:
                if _identity(os.fstat(f.fileno())) != self.identity:
                    raise WeightsError(
                        f"{self.path}: changed since it was loaded, so the {what} it held cannot "
                        "be read again; load the network again"
                    )
                f.seek(self.offset)
                out = _read_floats(f, self.count)
        except OSError as e:
            raise WeightsError(f"{self.path}: cannot read the {what} again: {e.strerror or e}") from None
        if out is None:
            raise WeightsError(f"{self.path}: changed since it was loaded (now too short)")
        return out


class WeightsReader:
    """Hands out the floats of a .weights file in order; the count must match the cfg exactly.

    Each take() reads its floats straight from the file into a new array, so loading never
    holds the whole file on top of the model (a model-sized transient: 35 MB for yolov3-tiny,
    245 MB for yolov4). A file that is not a regular one (a pipe) is read whole first.
    """

    def __init__(self, path: str | Path, needed: int | None = None, cfg_path: str = "the cfg"):
        self.path = str(path)
        self._file = None
        try:
            self._file = open(path, "rb")  # noqa: SIM115 - closed by finish(), close() or with
            st = os.fstat(self._file.fileno())
            size = st.st_size
            # a regular file can be read again (FloatsAt); a pipe cannot
            self._identity = _identity(st) if stat.S_ISREG(st.st_mode) else None
            if not stat.S_ISREG(st.st_mode):  # a pipe has no size: read it whole
                raw = self._file.read()
                self._file.close()
                self._file, size = io.BytesIO(raw), len(raw)
            self._read_header(self._file.read(20), size, needed, cfg_path)
        except OSError as e:
            self.close()
            raise WeightsError(f"{path}: cannot read weights file: {e.strerror or e}") from None
        except WeightsError:
            self.close()
            raise

    def _read_header(self, head: bytes, size: int, needed: int | None, cfg_path: str) -> None:
        path = self.path
        if size < 16:
            raise WeightsError(
                f"{path}: {size} bytes is too short for a darknet weights header (16 or 20 bytes)"
            )
        major, minor, revision = (int(v) for v in np.frombuffer(head, "<i4", 3))
        header = Header(major, minor, revision)
        if not (0 <= major < 100000 and 0 <= minor < 100000):
            raise WeightsError(
                f"{path}: header version {major}.{minor} is not a darknet weights header"
            )
        seen_dtype = "<u8" if header.seen_is_64bit else "<u4"
        header.seen = int(np.frombuffer(head, seen_dtype, 1, offset=12)[0])
        self.header = header
        body = size - header.nbytes
        if body % 4:
            raise WeightsError(
                f"{path}: {body} bytes after the {header.nbytes}-byte header is not a whole number "
                "of float32 values; the file is truncated or not a darknet weights file"
            )
        self.size = body // 4  # floats after the header
        self.pos = 0
        self._file.seek(header.nbytes)
        if needed is not None and needed != self.size:
            raise WeightsError(
                f"{path}: holds {self.size:,} floats ({size:,} bytes) after the header but "
                f"{cfg_path} needs {needed:,} ({needed * 4 + header.nbytes:,} bytes); "
                "do the .cfg and .weights match?"
            )

    def where(self, n: int) -> FloatsAt | None:
        """Where the next n floats are in the file, or None if it cannot be read again."""
        if self._identity is None:
            return None
        return FloatsAt(self.path, self._identity, self.header.nbytes + 4 * self.pos, n)

    def _room(self, n: int, what: str) -> None:
        """Running out of floats is an error naming the layer."""
        if self.pos + n > self.size:
            raise WeightsError(
                f"{self.path}: ran out of floats at {what}: needs {n:,} more after "
                f"{self.pos:,} but the file holds {self.size:,}"
            )

    def take(self, n: int, what: str = "layer") -> np.ndarray:
        """The next n floats (a new float32 array)."""
        self._room(n, what)
        out = _read_floats(self._file, n)
        if out is None:  # the file shrank while we read it
            raise WeightsError(f"{self.path}: ran out of floats at {what}: the file was truncated")
        self.pos += n
        return out

    def skip(self, n: int, what: str = "layer") -> None:
        """Step over the next n floats, to be read later from where(n) (a streamed parameter)."""
        self._room(n, what)
        self._file.seek(4 * n, os.SEEK_CUR)
        self.pos += n

    def finish(self) -> None:
        """Close the file; floats left over are an error (the cfg and weights do not match)."""
        self.close()
        if self.pos != self.size:
            raise WeightsError(
                f"{self.path}: {self.size - self.pos:,} floats left over after the last layer "
                f"(used {self.pos:,} of {self.size:,}); do the .cfg and .weights match?"
            )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> WeightsReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_weights(path: str | Path, arrays: list[np.ndarray], header: Header | None = None) -> None:
    """Write a darknet .weights file: header, then each array as little-endian float32 in order."""
    header = header or Header()
    with open(path, "wb") as f:
        f.write(np.array([header.major, header.minor, header.revision], "<i4").tobytes())
        f.write(np.array([header.seen], "<u8" if header.seen_is_64bit else "<u4").tobytes())
        for a in arrays:
            f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())
