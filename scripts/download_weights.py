"""Download the official Darknet weights for the project's cfg files into weights/.

usage: python scripts/download_weights.py yolov4-tiny [more ...] | --all | --list

Each file is written to weights/<stem>.weights.part while its size and sha256 are checked, and
renamed only when both match the table in pydarknet/zoo.py (entries without a published sha256
are checked by size). Stdlib only; works from a plain checkout without installing the package.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
try:
    from pydarknet.zoo import WEIGHTS, hint
except ImportError:  # the package's own dependencies (numpy, ...) are missing: load the table alone
    _spec = importlib.util.spec_from_file_location("pydarknet_zoo", REPO / "pydarknet" / "zoo.py")
    _zoo = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_zoo)
    WEIGHTS, hint = _zoo.WEIGHTS, _zoo.hint

__all__ = ["WEIGHTS", "hint", "main"]

CHUNK = 1 << 20
# pjreddie.com answers urllib's default user agent with 403 Forbidden
USER_AGENT = "pydarknet-download-weights/1"


class DownloadError(Exception):
    """A download that failed or did not verify; the message is shown as is."""


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(stem: str, size: int, sha256: str) -> str | None:
    """None if size and sha256 match WEIGHTS[stem] (where known), else what is wrong."""
    entry = WEIGHTS[stem]
    if entry["size"] is not None and size != entry["size"]:
        return f"{size:,} bytes, expected {entry['size']:,}"
    if entry["sha256"] is not None and sha256 != entry["sha256"]:
        return f"sha256 {sha256}, expected {entry['sha256']}"
    return None


def fetch(url: str, part: Path) -> tuple[int, str]:
    """Stream url into part; return (bytes written, sha256). Progress goes to stderr."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    digest, done = hashlib.sha256(), 0
    with urllib.request.urlopen(request, timeout=60) as response, open(part, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0)
        for chunk in iter(lambda: response.read(CHUNK), b""):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            if total and sys.stderr.isatty():
                print(f"\r  {done / total:6.1%} of {total:,} bytes", end="", file=sys.stderr)
    if total and sys.stderr.isatty():
        print(file=sys.stderr)
    return done, digest.hexdigest()


def download(stem: str, out_dir: Path, force: bool = False) -> Path:
    """Fetch WEIGHTS[stem] into out_dir/<stem>.weights, trying mirrors after the official URL."""
    entry = WEIGHTS[stem]
    if entry["url"] is None:
        raise DownloadError(hint(stem))
    dest = out_dir / f"{stem}.weights"
    if dest.exists() and not force:
        problem = verify(stem, dest.stat().st_size, sha256_of(dest))
        if problem is None:
            print(f"{dest}: already present and verified", file=sys.stderr)
            return dest
        raise DownloadError(f"{dest} exists but has {problem}; rerun with --force to replace it")
    out_dir.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    errors = []
    for url in [entry["url"], *entry.get("mirrors", [])]:
        print(f"{stem}: downloading {url}", file=sys.stderr)
        try:
            size, sha256 = fetch(url, part)
        except (urllib.error.URLError, OSError) as e:
            errors.append(f"{url}: {e}")
            continue
        problem = verify(stem, size, sha256)
        if problem is None:
            os.replace(part, dest)
            check = "size and sha256" if entry["sha256"] else "size only (no published sha256)"
            print(f"{dest}: verified ({check})", file=sys.stderr)
            return dest
        errors.append(f"{url}: got {problem}")
    part.unlink(missing_ok=True)
    raise DownloadError(
        f"{stem}: no verified download; nothing was saved\n  " + "\n  ".join(errors)
    )


def listing(out_dir: Path) -> str:
    """The --list table: stem, size, what is verified, URL or why there is none."""
    rows = []
    for stem, entry in WEIGHTS.items():
        if entry["url"] is None:
            rows.append(f"{stem:<15} {'-':>13}  no official weights: {entry['note']}")
            continue
        check = f"sha256 {entry['sha256'][:12]}..." if entry["sha256"] else "size only (no sha256)"
        have = " [present]" if (out_dir / f"{stem}.weights").exists() else ""
        rows.append(f"{stem:<15} {entry['size']:>13,}  {check:<22} {entry['url']}{have}")
    header = f"{'cfg stem':<15} {'bytes':>13}  {'verified by':<22} official URL"
    return "\n".join([header, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Download official Darknet weights into weights/<cfg stem>.weights."
    )
    parser.add_argument("stems", nargs="*", metavar="CFG_STEM", help="e.g. yolov4-tiny")
    parser.add_argument("--all", action="store_true", help="every entry that has official weights")
    parser.add_argument("--list", action="store_true", help="show the table and exit")
    parser.add_argument("--dir", type=Path, default=REPO / "weights", help="default: weights/")
    parser.add_argument("--force", action="store_true", help="replace a file that does not verify")
    args = parser.parse_args(argv)
    if args.list:
        print(listing(args.dir))
        return 0
    unknown = [s for s in args.stems if s not in WEIGHTS]
    if unknown:
        parser.error(f"unknown cfg stem {', '.join(unknown)}; choose from {', '.join(WEIGHTS)}")
    stems = list(WEIGHTS) if args.all else args.stems
    if not stems:
        parser.error("name at least one cfg stem, or use --all or --list")
    failed = 0
    for stem in stems:
        if args.all and WEIGHTS[stem]["url"] is None:
            print(f"skipping {stem}: {hint(stem)}", file=sys.stderr)
            continue
        try:
            download(stem, args.dir, args.force)
        except DownloadError as e:
            print(f"download_weights: error: {e}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
