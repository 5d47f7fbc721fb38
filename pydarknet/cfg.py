"""Darknet .cfg text -> list[Section] with typed getters (darknet parser.c read_cfg, option_list.c)."""

from __future__ import annotations

import codecs
import difflib
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CfgError, DarknetError

# A value may carry a trailing inline comment ("filters=255#x"); darknet's atoi ignores it.
_INLINE_COMMENT = re.compile(r"[#;].*$")
_LEADING_INT = re.compile(r"[+-]?[0-9]+")  # what C's atoi() reads
_LEADING_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")  # atof()


@dataclass
class Section:
    """One [section] of a cfg: its options in file order, the first occurrence of a key wins."""

    kind: str
    path: str
    line: int
    options: dict[str, tuple[str, int]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    asked: set[str] = field(default_factory=set)  # every key a getter looked for

    # -- reading -------------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        return key in self.options

    def _raw(self, key: str) -> str | None:
        self.asked.add(key)
        if key not in self.options:
            return None
        self.used.add(key)
        return _INLINE_COMMENT.sub("", self.options[key][0])

    def get_str(self, key: str, default: str | None = None) -> str | None:
        value = self._raw(key)
        return default if value is None else value

    def get_int(self, key: str, default: int | None = None) -> int:
        value = self._raw(key)
        if value is None:
            if default is None:
                raise self.error(key, "is required")
            return default
        return self._to_int(key, value)

    def get_float(self, key: str, default: float | None = None) -> float:
        value = self._raw(key)
        if value is None:
            if default is None:
                raise self.error(key, "is required")
            return default
        return self._to_float(key, value)

    def get_ints(self, key: str, default: list[int] | None = None) -> list[int]:
        value = self._raw(key)
        if value is None or value == "":
            if default is None:
                raise self.error(key, "is required")
            return list(default)
        return [self._to_int(key, v) for v in value.strip(",").split(",")]

    def get_floats(self, key: str, default: list[float] | None = None) -> list[float]:
        value = self._raw(key)
        if value is None or value == "":
            if default is None:
                raise self.error(key, "is required")
            return list(default)
        return [self._to_float(key, v) for v in value.strip(",").split(",")]

    def _to_int(self, key: str, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise self._bad_int(key, text, "is not a number; expected an integer") from None
            if not math.isfinite(number) or number != int(number):
                raise self._bad_int(key, text, "is not an integer")
            return int(number)

    def _bad_int(self, key: str, text: str, what: str) -> CfgError:
        """Stricter than darknet, as for every bad number; the message says what darknet's
        atoi() would read instead, the leading integer or 0 (`layers = -6-1`, a typo for
        -6,-1, builds `route -6` there)."""
        lead = _LEADING_INT.match(text)
        darknet = int(lead.group()) if lead else 0
        return self.error(key, f"{text!r} {what} (darknet's atoi would read {darknet})")

    def _to_float(self, key: str, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            lead = _LEADING_FLOAT.match(text)
            darknet = float(lead.group()) if lead else 0.0
            raise self.error(key, f"{text!r} is not a number (darknet's atof would read "
                                  f"{darknet:g})") from None  # fmt: skip

    # -- errors --------------------------------------------------------------------------------
    def where(self, key: str | None = None) -> int:
        if key is not None and key in self.options:
            return self.options[key][1]
        return self.line

    def error(self, key: str | None, message: str) -> CfgError:
        """A CfgError `file:line: [kind] key=value: message` for this section."""
        if key is not None and key in self.options:
            what = f"[{self.kind}] {key}={self.options[key][0]}: {message}"
        elif key is not None:
            what = f"[{self.kind}] {key}: {message}"
        else:
            what = f"[{self.kind}] {message}"
        return CfgError(what, self.path, self.where(key))

    def warn_unused(self, ignored: frozenset[str] | set[str]) -> None:
        """Warn about keys nobody read, like darknet's option_unused (training keys excepted).

        A key that looks like a misspelling of a known one (`filtrs`, `stirde`) is an error:
        darknet would silently use the default, which changes what the network computes.
        """
        known = sorted(self.asked | set(ignored))
        for key, (value, line) in self.options.items():
            if key not in self.used and key not in ignored:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
                if close and close[0] in self.asked:
                    raise CfgError(
                        f"[{self.kind}] {key}={value}: unknown option; did you mean "
                        f"{close[0]}=?", self.path, line,
                    )
                warnings.warn(
                    f"{self.path}:{line}: [{self.kind}] {key}={value}: unused option",
                    stacklevel=3,
                )


def parse_cfg_text(text: str, path: str = "<cfg>") -> list[Section]:
    """Parse cfg text: every whitespace char is deleted, '#'/';' lines are comments."""
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = "".join(raw.split())  # darknet strip(): removes all spaces, tabs, \r
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]") or len(line) < 3:
                raise CfgError(f"malformed section header {raw.strip()!r}", path, number)
            kind = line[1:-1].lower()
            if kind == "network":
                kind = "net"
            sections.append(Section(kind, path, number))
            continue
        if not sections:
            raise CfgError(f"{raw.strip()!r} comes before any [section]", path, number)
        key, eq, value = line.partition("=")
        if not eq or not key:
            raise CfgError(
                f"[{sections[-1].kind}] {raw.strip()!r}: expected key=value", path, number
            )
        sections[-1].options.setdefault(key, (value, number))  # option_find: first one wins
    if not sections:
        raise CfgError("no sections found; is this a darknet .cfg file?", path)
    return sections


def read_cfg(path: str | Path) -> list[Section]:
    """Read and parse a cfg file; a missing or unreadable file is a CfgError naming it."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CfgError(f"cannot read cfg file: {e.strerror or e}", str(path)) from None
    return parse_cfg_text(decode_text(data), str(path))


def read_text(path: str | Path) -> str:
    """A darknet text file (.names, .data, image list, labels) decoded as decode_text does; a
    missing or unreadable file is a DarknetError naming it."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DarknetError(f"{path}: cannot read: {e.strerror or e}") from None
    return decode_text(data)


def decode_text(data: bytes) -> str:
    """UTF-8 text (ASCII in practice) without the byte-order mark that Windows editors may
    write first and no editor shows; a UTF-16 file (with its mark) is read as such. Darknet
    would take the mark for text: a first class name that never matches, or a cfg that stops
    with a confusing message."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8-sig", errors="replace")
