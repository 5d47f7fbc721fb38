"""Video files, cameras and network streams in, annotated video out (darknet src/demo.c).

Frames are decoded by a background thread (pipeline.prefetch) while the network runs on the
previous one, as demo.c's fetch_in_thread does. The writer is a context manager: leaving the
block any way (end of input, an error, Ctrl-C) releases it, so what was written stays playable.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import ImageError
from .pipeline import prefetch
from .postprocess import Detection

VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
              ".3gp", ".ts", ".mjpeg", ".mjpg", ".ogv"}  # fmt: skip
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# the codec VideoWriter uses for an output extension; MJPG needs no extra encoder
_FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "MJPG"}


def is_stream(spec: str) -> bool:
    """True for what `detect` treats as video: a camera index, a URL, or a video file name."""
    return spec.isdigit() or bool(_URL.match(spec)) or Path(spec).suffix.lower() in VIDEO_EXTS


def describe(spec: str) -> str:
    """A file-name stem for a source: the video's stem, camera0, or stream."""
    if spec.isdigit():
        return f"camera{spec}"
    if _URL.match(spec):
        return "stream"
    return Path(spec).stem


@dataclass
class VideoSource:
    """An opened cv2.VideoCapture with its size, frame rate and frame count (if known)."""

    spec: str
    capture: cv2.VideoCapture
    width: int
    height: int
    fps: float  # 0 when the source does not say
    frame_count: int | None = None  # None for cameras and streams
    first: np.ndarray | None = field(default=None, repr=False)  # the frame read by open

    def frames(self, depth: int = 2) -> Iterator[np.ndarray]:
        """BGR uint8 frames, decoded `depth` ahead by a background thread."""

        def read():
            if self.first is not None:
                frame, self.first = self.first, None
                yield frame
            while True:
                ok, frame = self.capture.read()
                if not ok or frame is None:
                    return
                yield frame

        return prefetch(read(), depth)

    def close(self) -> None:
        self.capture.release()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def _native_stderr_off():
    """Silence what OpenCV and FFmpeg print straight to fd 2 while probing a source: a failed
    open becomes our one-line error instead of their warnings."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def open_source(spec: str | int) -> VideoSource:
    """Open a video file, a camera index (0, 1, ...) or a URL (rtsp://, http://, ...).

    Reads the first frame to be sure the source is usable: a file OpenCV cannot decode raises
    ImageError naming it, rather than yielding an empty run.
    """
    spec = str(spec)
    what = f"camera {spec}" if spec.isdigit() else spec
    if not spec.isdigit() and not _URL.match(spec):
        p = Path(spec)
        if not p.exists():
            raise ImageError(f"{spec}: cannot open video (no such file)")
        if p.is_dir():
            raise ImageError(f"{spec}: cannot open video (it is a directory)")
    with _native_stderr_off():
        cap = cv2.VideoCapture(int(spec) if spec.isdigit() else spec)
        opened = cap.isOpened()
        ok, first = cap.read() if opened else (False, None)
    if not opened:
        cap.release()
        raise ImageError(f"{what}: cannot open video (OpenCV cannot open or decode it)")
    if not ok or first is None:
        cap.release()
        raise ImageError(f"{what}: cannot read video (no frame could be decoded)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    is_file = not spec.isdigit() and not _URL.match(spec)
    return VideoSource(
        spec, cap, first.shape[1], first.shape[0],
        fps if math.isfinite(fps) and fps > 0 else 0.0,
        count if is_file and count > 0 else None, first,
    )  # fmt: skip


class VideoWriter:
    """cv2.VideoWriter that names its file in errors and always releases (demo.c out_filename).

    .avi and .mkv get MJPG (works in every OpenCV build), .mp4/.m4v/.mov get mp4v.
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]):
        self.path = str(path)
        ext = Path(self.path).suffix.lower()
        if ext not in _FOURCC:
            raise ImageError(f"{path}: cannot write video (use one of {', '.join(_FOURCC)})")
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.size = size
        self.frames = 0
        fourcc = cv2.VideoWriter_fourcc(*_FOURCC[ext])
        self._w = cv2.VideoWriter(self.path, fourcc, fps if fps > 0 else 25.0, size)
        if not self._w.isOpened():
            raise ImageError(f"{path}: cannot write video (OpenCV could not open a writer)")

    def write(self, frame: np.ndarray) -> None:
        """Append one BGR uint8 frame of the writer's size."""
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)  # a stream may change size mid-way
        self._w.write(frame)
        self.frames += 1

    def release(self) -> None:
        """Finish the file (writes the index/trailer): after this it is playable."""
        if self._w is not None:
            self._w.release()
            self._w = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@dataclass
class Frame:
    """One processed frame: its number (from 1, as darknet's frame_id), pixels, detections."""

    frame_id: int
    image: np.ndarray
    detections: list[Detection]
    seconds: float  # forward + decode time of this frame


def detect_frames(detector, source: VideoSource, batch: int = 1, depth: int = 2
                  ) -> Iterator[Frame]:  # fmt: skip
    """Run the detector over every frame of an opened source.

    A background thread decodes and prepares (resizes) frames ahead while the network runs;
    `batch` frames go through the network together (more throughput, more latency).
    """
    prepared = prefetch(((f, detector.prepare(f)) for f in source.frames(0)), depth * batch)
    frame_id = 0
    try:
        chunk: list = []
        for item in prepared:
            chunk.append(item)
            if len(chunk) < batch:
                continue
            yield from _run(detector, chunk, frame_id)
            frame_id += len(chunk)
            chunk = []
        if chunk:
            yield from _run(detector, chunk, frame_id)
    finally:
        prepared.close()


def _run(detector, chunk: list, frame_id: int) -> Iterator[Frame]:
    t0 = time.perf_counter()
    dets = detector.detect_prepared([x for _, x in chunk],
                                    [(f.shape[1], f.shape[0]) for f, _ in chunk])  # fmt: skip
    share = (time.perf_counter() - t0) / len(chunk)
    for k, ((f, _), d) in enumerate(zip(chunk, dets)):
        yield Frame(frame_id + k + 1, f, d, share)
