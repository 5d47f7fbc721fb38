"""Throughput for many images: a loader thread that decodes and resizes ahead, batched forwards.

While the network runs on image i, a background thread reads and prepares image i+1 (and up
to `depth` more) into a bounded queue, as darknet's detector valid/map load with pthreads.
cv2.imread and most NumPy work release the GIL, so the two overlap. Results come back in
input order; an image that cannot be read becomes a Result with `error` set, and the run
goes on.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import image, labels
from .errors import DarknetError
from .postprocess import Detection

_END = object()


@dataclass
class Result:
    """One input's outcome: detections, or the error that stopped it."""

    index: int  # position in the input sequence
    source: str  # the path (or frame name) as given
    image: np.ndarray | None = None  # BGR uint8; None if it could not be read or keep_images=False
    detections: list[Detection] = field(default_factory=list)
    error: str | None = None  # one line naming the input, e.g. "x.jpg: cannot read image ..."
    seconds: float = 0.0  # this input's share of its batch's forward + decode time
    size: tuple[int, int] = (0, 0)  # image (w, h)


def prefetch(items: Iterable, depth: int = 2) -> Iterator:
    """Iterate over `items` computed by a background thread, at most `depth` ahead.

    An exception in the producer is re-raised in the consumer; closing the returned generator
    (break, Ctrl-C) stops the producer within one item.
    """
    if depth < 1:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(x) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for x in items:
                if not put((True, x)):
                    return
        except BaseException as e:  # handed to the consumer, raised there
            put((False, e))
            return
        put((True, _END))

    thread = threading.Thread(target=produce, name="pydarknet-loader", daemon=True)
    thread.start()
    try:
        while True:
            ok, x = q.get()
            if not ok:
                raise x
            if x is _END:
                return
            yield x
    finally:
        stop.set()
        thread.join(timeout=5)


def _load(detector, index: int, path: str):
    """(index, path, image, prepared input, error): runs in the loader thread."""
    try:
        img = detector.load_image(path)
        return index, path, img, detector.prepare(img), None
    except DarknetError as e:
        return index, path, None, None, str(e)
    except (OSError, ValueError) as e:
        return index, path, None, None, f"{path}: cannot read image ({e})"


def _chunks(it: Iterator, n: int) -> Iterator[list]:
    chunk = []
    for x in it:
        chunk.append(x)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def detect_paths(
    detector,
    paths: Sequence[str] | Iterable[str],
    batch: int = 1,
    depth: int = 2,
    keep_images: bool = True,
    load: Callable | None = None,
) -> Iterator[Result]:
    """Detections for image files, in order: loading pipelined, forwards `batch` at a time.

    depth=0 turns the loader thread off (load, then infer, one after the other). With TTA
    each image's passes form their own batches, so `batch` only groups plain inputs.
    """
    if batch < 1:
        raise DarknetError(f"batch {batch}: must be >= 1")
    loader = load or _load
    loaded = prefetch((loader(detector, i, p) for i, p in enumerate(paths)), depth * batch)
    try:
        for chunk in _chunks(loaded, batch):
            good = [c for c in chunk if c[4] is None]
            t0 = time.perf_counter()
            dets = detector.detect_prepared(
                [c[3] for c in good], [(c[2].shape[1], c[2].shape[0]) for c in good]
            )
            share = (time.perf_counter() - t0) / max(len(good), 1)
            found = {c[0]: d for c, d in zip(good, dets)}
            for index, path, img, _, err in chunk:
                if err is not None:
                    yield Result(index, path, error=err)
                    continue
                size = (img.shape[1], img.shape[0])
                yield Result(index, path, img if keep_images else None, found[index], None,
                             share, size)  # fmt: skip
    finally:
        loaded.close()


def save_outputs(result: Result, names, out_dir: str | None, save_labels: bool,
                 thresh: float) -> None:  # fmt: skip
    """What `detect` keeps for one image: an annotated copy in out_dir, a darknet label file."""
    if out_dir is not None and result.image is not None:
        target = Path(out_dir) / (Path(result.source).stem + ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save_image(target, image.draw_detections(result.image, result.detections, names))
    if save_labels:
        labels.write_labels(result.source, result.detections, thresh)
