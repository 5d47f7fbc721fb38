"""Darknet's YOLO label files: where they live, reading them, writing them (-save_labels).

One line per object, `class_id x y w h`, the box centre and size relative to the image
(utils.c replace_image_to_label, data.c read_boxes, detector.c test_detector save_labels).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .cfg import read_text
from .errors import DarknetError
from .postprocess import Detection

_F = np.float32
_EXTS = (".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".bmp", ".BMP", ".ppm", ".PPM",
         ".tiff", ".TIFF")  # fmt: skip


def label_path(image_path: str | os.PathLike) -> str:
    """Where darknet keeps an image's label file (utils.c replace_image_to_label).

    images/{train,val}{2014,2017}/ and JPEGImages/ become labels/..., then the image extension
    (.jpg .jpeg .png .bmp .ppm .tiff, lower or upper case) becomes .txt. Darknet keeps any other
    extension and warns; here it becomes .txt too, so labels never overwrite an image.
    """
    out = str(image_path)
    for sub in ("train2017", "val2017", "train2014", "val2014"):
        for sep in ("/", "\\"):
            out = out.replace(f"{sep}images{sep}{sub}{sep}", f"{sep}labels{sep}{sub}{sep}", 1)
    for sep in ("/", "\\"):
        out = out.replace(f"{sep}JPEGImages{sep}", f"{sep}labels{sep}", 1)
    out = out.strip(" \t")
    for ext in _EXTS:
        if out.endswith(ext):
            return out[: -len(ext)] + ".txt"
    return os.path.splitext(out)[0] + ".txt"


def read_labels(path: str | os.PathLike, classes: int | None = None) -> np.ndarray:
    """(K, 5) float32 rows [class_id, x, y, w, h] of a label file (data.c read_boxes).

    A missing file means no objects (darknet prints a notice and goes on); a line that is not
    five numbers, or a class id outside 0..classes-1, is an error naming file:line.
    """
    p = Path(path)
    if not p.is_file():
        return np.zeros((0, 5), _F)
    rows = []
    text = read_text(p)
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) < 5:
                raise ValueError
            cls, x, y, w, h = int(parts[0]), *(float(v) for v in parts[1:5])
        except ValueError:
            what = f"{path}:{n}: {line.strip()!r}"
            raise DarknetError(f"{what}: expected 'class_id x y w h'") from None
        if cls < 0 or (classes is not None and cls >= classes):
            raise DarknetError(f"{path}:{n}: class id {cls} is out of range for {classes} classes")
        rows.append((cls, x, y, w, h))
    return np.array(rows, _F).reshape(-1, 5)


def format_labels(detections: Sequence[Detection], thresh: float) -> str:
    """The text darknet's -save_labels writes: per box its best class, "%d %2.4f %2.4f ...".

    Per box the class with the highest prob > thresh (the first one on ties), then x y w h
    relative to the image, boxes in detection order.
    """
    best: dict[int, Detection] = {}
    for d in detections:
        if _F(d.confidence) > _F(thresh):
            b = best.get(d.box_id)
            if b is None or _F(d.confidence) > _F(b.confidence):
                best[d.box_id] = d
    return "".join("%d %2.4f %2.4f %2.4f %2.4f\n" % (d.class_id, d.x, d.y, d.w, d.h)
                   for d in best.values())  # fmt: skip


def write_labels(image_path: str | os.PathLike, detections: Sequence[Detection],
                 thresh: float) -> str:  # fmt: skip
    """Write an image's label file where darknet would (label_path); returns that path."""
    target = label_path(image_path)
    try:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(format_labels(detections, thresh), encoding="utf-8")
    except OSError as e:
        raise DarknetError(f"{target}: cannot write labels: {e.strerror or e}") from None
    return target
