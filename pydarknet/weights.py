"""Darknet .weights files: header, then float32 parameters in layer order (parser.c load_weights_upto)."""

from __future__ import annotations

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


class WeightsReader:
    """Hands out the floats of a .weights file in order; the count must match the cfg exactly."""

    def __init__(self, path: str | Path, needed: int | None = None, cfg_path: str = "the cfg"):
        self.path = str(path)
        try:
            raw = Path(path).read_bytes()
        except OSError as e:
            raise WeightsError(f"{path}: cannot read weights file: {e.strerror or e}") from None
        if len(raw) < 16:
            raise WeightsError(
                f"{path}: {len(raw)} bytes is too short for a darknet weights header (16 or 20 bytes)"
            )
        major, minor, revision = (int(v) for v in np.frombuffer(raw, "<i4", 3))
        header = Header(major, minor, revision)
        if not (0 <= major < 100000 and 0 <= minor < 100000):
            raise WeightsError(
                f"{path}: header version {major}.{minor} is not a darknet weights header"
            )
        seen_dtype = "<u8" if header.seen_is_64bit else "<u4"
        header.seen = int(np.frombuffer(raw, seen_dtype, 1, offset=12)[0])
        self.header = header
        body = len(raw) - header.nbytes
        if body % 4:
            raise WeightsError(
                f"{path}: {body} bytes after the {header.nbytes}-byte header is not a whole number "
                "of float32 values; the file is truncated or not a darknet weights file"
            )
        self.data = np.frombuffer(raw, "<f4", offset=header.nbytes)
        self.pos = 0
        if needed is not None and needed != self.data.size:
            raise WeightsError(
                f"{path}: holds {self.data.size:,} floats ({len(raw):,} bytes) after the header but "
                f"{cfg_path} needs {needed:,} ({needed * 4 + header.nbytes:,} bytes); "
                "do the .cfg and .weights match?"
            )

    def take(self, n: int, what: str = "layer") -> np.ndarray:
        """The next n floats (float32 copy); running out is an error naming the layer."""
        if self.pos + n > self.data.size:
            raise WeightsError(
                f"{self.path}: ran out of floats at {what}: needs {n:,} more after "
                f"{self.pos:,} but the file holds {self.data.size:,}"
            )
        out = np.array(self.data[self.pos : self.pos + n], dtype=np.float32)
        self.pos += n
        return out

    def finish(self) -> None:
        if self.pos != self.data.size:
            raise WeightsError(
                f"{self.path}: {self.data.size - self.pos:,} floats left over after the last layer "
                f"(used {self.pos:,} of {self.data.size:,}); do the .cfg and .weights match?"
            )


def write_weights(path: str | Path, arrays: list[np.ndarray], header: Header | None = None) -> None:
    """Write a darknet .weights file: header, then each array as little-endian float32 in order."""
    header = header or Header()
    with open(path, "wb") as f:
        f.write(np.array([header.major, header.minor, header.revision], "<i4").tobytes())
        f.write(np.array([header.seen], "<u8" if header.seen_is_64bit else "<u4").tobytes())
        for a in arrays:
            f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())
