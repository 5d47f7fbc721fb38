"""Load, resize, letterbox and draw images as darknet does (src/image.c, src/image_opencv.cpp).

The only module that imports cv2. Network input is planar RGB float32 in [0, 1], shape (3, h, w);
images on the way in and out are OpenCV's BGR uint8, shape (h, w, 3).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .errors import ImageError

if TYPE_CHECKING:
    from .postprocess import Detection

_F = np.float32


def load_image(path: str | os.PathLike, channels: int = 3) -> np.ndarray:
    """BGR uint8 (h, w, 3) via cv2.imread(IMREAD_COLOR), or for a network of channels=1 gray
    uint8 (h, w) via IMREAD_GRAYSCALE, as darknet load_image_cv(filename, net.c) reads it (a
    JPEG decoded to gray differs from cvtColor of its colour decode in a few pixels).

    Darknet turns an unreadable file into a blank 10x10 image and carries on; we raise.
    """
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{path}: cannot read image (no such file)")
    if p.is_dir():
        raise ImageError(f"{path}: cannot read image (it is a directory)")
    if not os.access(p, os.R_OK):
        raise ImageError(f"{path}: cannot read image (permission denied)")
    if p.stat().st_size == 0:
        raise ImageError(f"{path}: cannot read image (the file is empty)")
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    img = cv2.imread(str(p), flag)  # applies EXIF orientation, like darknet
    if img is None or img.size == 0:
        raise ImageError(f"{path}: cannot read image (OpenCV cannot decode it)")
    return img


def as_image(img, channels: int = 3) -> np.ndarray:
    """An image array as given, or the file at a path (str or os.PathLike) read by
    load_image; anything else is a ValueError naming what it got."""
    if isinstance(img, (str, os.PathLike)):
        return load_image(img, channels)
    if not isinstance(img, np.ndarray):
        raise ValueError(f"expected an image (a uint8 array or a file path), got "
                         f"{type(img).__name__}")  # fmt: skip
    return img


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """An image for a network of `channels` inputs: BGR (h, w, 3) for 3, gray (h, w) for 1,
    converted with cv2.cvtColor where it is the other kind."""
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img
    if channels == 1:
        if img.ndim == 3 and img.shape[2] == 1:
            return img[:, :, 0]
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    raise ImageError(f"images go to networks of 1 or 3 channels, this one has {channels}; "
                     "call forward() with your own (N, C, H, W) input")  # fmt: skip


def to_planar_rgb(bgr_u8: np.ndarray) -> np.ndarray:
    """BGR uint8 (h, w, 3) -> RGB float32 (3, h, w) = x / 255.0f (image_opencv.cpp mat_to_image);
    gray uint8 (h, w) -> (1, h, w)."""
    if bgr_u8.ndim == 2 and bgr_u8.dtype == np.uint8:
        return (bgr_u8.astype(_F) / _F(255.0))[None]  # float32 / float32 under numpy 1.x too
    if bgr_u8.ndim != 3 or bgr_u8.shape[2] != 3 or bgr_u8.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 (h, w, 3) image, got {bgr_u8.dtype} {bgr_u8.shape}")
    out = np.empty((3, *bgr_u8.shape[:2]), _F)
    planes = cv2.split(np.ascontiguousarray(bgr_u8))
    for k, plane in enumerate(reversed(planes)):  # R, G, B; faster than a transpose
        out[k] = plane
    out /= _F(255.0)
    return out


def _lerp_columns(src: np.ndarray, ix: np.ndarray, dx: np.ndarray, out: np.ndarray) -> None:
    """out[:, j] = (1-dx[j])*src[:, ix[j]] + dx[j]*src[:, ix[j]+1], float32, in row blocks.

    Blocks of 64 rows keep the temporaries in cache (about 1.5x faster on 1920x1080 frames).
    """
    ndx = 1 - dx
    for r0 in range(0, len(src), 64):
        rows = src[r0 : r0 + 64]
        lo, hi = np.take(rows, ix, axis=1), np.take(rows, ix + 1, axis=1)
        lo *= ndx
        hi *= dx
        np.add(lo, hi, out=out[r0 : r0 + 64])


def resize_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """Darknet's separable bilinear resize, bit for bit (image.c resize_image).

    (C, H, W) float32 -> (C, h, w) float32. Scale is (in-1)/(out-1) ("align corners"); first a
    pass along x into a (C, H, w) part image, then along y. Every step is float32, in the
    C code's order of operations, so results match darknet exactly.
    """
    if im.ndim != 3 or w < 1 or h < 1:
        raise ValueError(f"cannot resize an image of shape {im.shape} to {w}x{h}")
    im = np.ascontiguousarray(im, dtype=_F)
    c, ih, iw = im.shape
    if iw == w and ih == h:
        return im.copy()

    # x pass: part[:, :, x] = (1-dx)*im[ix] + dx*im[ix+1]; the last column copies im.w-1
    part = np.empty((c, ih, w), _F)
    part[:, :, w - 1] = im[:, :, iw - 1]
    if iw == 1:
        part[:, :, : w - 1] = im[:, :, :1]
    elif w > 1:
        w_scale = _F(iw - 1) / _F(w - 1)
        sx = np.arange(w - 1, dtype=_F) * w_scale  # float sx = c*w_scale
        ix = sx.astype(np.intp)  # (int) sx truncates; sx >= 0
        dx = sx - ix.astype(_F)
        _lerp_columns(im.reshape(c * ih, iw), ix, dx, part.reshape(c * ih, w)[:, : w - 1])

    # y pass: out = (1-dy)*part[iy], then += dy*part[iy+1] except on the last row / im.h == 1.
    # The last row is NOT special-cased in the first term: if (h-1)*h_scale rounds just below
    # im.h-1 darknet's last row is mostly (1-dy)*part[im.h-2]; we keep that quirk.
    # h == 1 divides by zero in darknet (0*inf = NaN row index, undefined); we use row 0.
    h_scale = _F(ih - 1) / _F(h - 1) if h > 1 else _F(0.0)
    sy = np.arange(h, dtype=_F) * h_scale
    iy = sy.astype(np.intp)
    dy = sy - iy.astype(_F)
    out = np.take(part, iy, axis=1)
    out *= (1 - dy)[:, None]
    if ih > 1 and h > 1:
        hi = np.take(part, iy[:-1] + 1, axis=1)
        hi *= dy[:-1, None]
        out[:, :-1, :] += hi
    return out


def letterbox_size(im_w: int, im_h: int, w: int, h: int) -> tuple[int, int]:
    """(new_w, new_h) of the image inside a w x h letterbox (image.c letterbox_image)."""
    if _F(w) / _F(im_w) < _F(h) / _F(im_h):  # float comparison, as in C
        return w, (im_h * w) // im_w
    return (im_w * h) // im_h, h


def letterbox_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """Fit (C, H, W) into (C, h, w), aspect kept, centred on 0.5 grey (image.c letterbox_image)."""
    c, ih, iw = im.shape
    new_w, new_h = letterbox_size(iw, ih, w, h)
    resized = resize_image(im, new_w, new_h)
    boxed = np.full((c, h, w), 0.5, _F)
    dx, dy = (w - new_w) // 2, (h - new_h) // 2  # both >= 0, so // is C's division
    boxed[:, dy : dy + new_h, dx : dx + new_w] = resized
    return boxed


def prepare(image_bgr_u8: np.ndarray, net_w: int, net_h: int, letterbox: bool) -> np.ndarray:
    """BGR uint8 image -> network input float32 (3, net_h, net_w) (detector.c test_detector):
    letterbox_image(to_planar_rgb(im)) or resize_image(to_planar_rgb(im)) bit for bit, in one
    compiled pass (kernels.resize_bgr; 3x faster, no float copy of the whole image). A gray
    uint8 (h, w) image gives (1, net_h, net_w), resized the same way."""
    from . import threads

    gray = image_bgr_u8.ndim == 2
    bgr = image_bgr_u8.ndim == 3 and image_bgr_u8.shape[2] == 3
    if not (gray or bgr) or image_bgr_u8.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 (h, w, 3) image, got {image_bgr_u8.dtype} "
                         f"{image_bgr_u8.shape}")  # fmt: skip
    if net_w < 1 or net_h < 1:
        raise ValueError(f"cannot resize an image to {net_w}x{net_h}")
    im = np.ascontiguousarray(image_bgr_u8)
    # a kernel called before the set-up thread has loaded it would load it with Numba's
    # registry refresh (0.1 s) on this thread: wait for the set-up, as forward() does
    threads.wait_numba_setup()
    if gray:  # one plane, for a channels=1 network: the float twins, as classify() uses
        resize = letterbox_image if letterbox else resize_image
        return resize(to_planar_rgb(im), net_w, net_h)
    if not letterbox:
        out = np.empty((3, net_h, net_w), _F)
        resize_bgr(im, out)
        return out
    new_w, new_h = letterbox_size(im.shape[1], im.shape[0], net_w, net_h)
    boxed = np.full((3, net_h, net_w), 0.5, _F)
    dx, dy = (net_w - new_w) // 2, (net_h - new_h) // 2
    resize_bgr(im, boxed[:, dy : dy + new_h, dx : dx + new_w])
    return boxed


def resize_bgr(im: np.ndarray, out: np.ndarray) -> None:
    """kernels.resize_bgr of a BGR uint8 (H, W, 3) image into out (3, h, w), with its scratch."""
    from . import kernels

    ih, h, w = im.shape[0], out.shape[1], out.shape[2]
    kernels.resize_bgr(im, out, np.empty(w, np.int64), np.empty(w, _F), np.empty(h, np.int64),
                       np.empty(h, _F), np.empty(ih, np.bool_), np.empty((3, ih, w), _F),
                       _UNIT)  # fmt: skip


_UNIT = np.arange(256, dtype=_F) / _F(255.0)  # v / 255.0f, rounded as C's float division


# -- drawing -----------------------------------------------------------------------------------
_COLORS = ((1, 0, 1), (0, 0, 1), (0, 1, 1), (0, 1, 0), (1, 1, 0), (1, 0, 0))


def get_color(c: int, x: int, max_: int) -> np.float32:
    """Channel c (0=b, 1=g, 2=r in darknet's naming) of the colour for x out of max (image.c)."""
    ratio = _F(x) / _F(max_) * _F(5)
    i, j = math.floor(ratio), math.ceil(ratio)
    ratio = ratio - _F(i)
    return (1 - ratio) * _F(_COLORS[i][c]) + ratio * _F(_COLORS[j][c])


def class_color(class_id: int, classes: int) -> tuple[int, int, int]:
    """BGR uint8 colour of a class: draw_detections_v3's offset, get_color, (uchar)(255*v)."""
    offset = class_id * 123457 % classes
    red, green, blue = (get_color(k, offset, classes) for k in (2, 1, 0))
    return tuple(int(_F(255) * v) for v in (blue, green, red))  # type: ignore[return-value]


def _draw_box(img: np.ndarray, x1: int, y1: int, x2: int, y2: int, color) -> None:
    """One 1-pixel rectangle, each corner clipped into the image (image.c draw_box)."""
    h, w = img.shape[:2]
    x1, x2 = min(max(x1, 0), w - 1), min(max(x2, 0), w - 1)
    y1, y2 = min(max(y1, 0), h - 1), min(max(y2, 0), h - 1)
    if x1 <= x2:
        img[y1, x1 : x2 + 1] = color
        img[y2, x1 : x2 + 1] = color
    if y1 <= y2:
        img[y1 : y2 + 1, x1] = color
        img[y1 : y2 + 1, x2] = color


def _to_pixel(v: float, hi: int) -> int:
    """C's (int) truncation of a pixel coordinate, then draw_detections_v3's clip to [0, hi]."""
    if math.isnan(v):
        return 0
    return int(min(max(v, 0.0), float(hi)))  # trunc and clip commute for integer bounds


def draw_detections(
    image_bgr_u8: np.ndarray, detections: Sequence[Detection], names: Sequence[str] | None = None
) -> np.ndarray:
    """A copy of the image with boxes and "name conf%" labels (image.c draw_detections_v3).

    One box per darknet box (detections sharing box_id), coloured by its best class and labelled
    with every class found in it; boxes are drawn in ascending confidence so the best is on top.
    """
    if image_bgr_u8.ndim == 2:  # a gray network's input: boxes in colour on it
        out = cv2.cvtColor(np.asarray(image_bgr_u8, np.uint8), cv2.COLOR_GRAY2BGR)
    else:
        out = np.array(image_bgr_u8, dtype=np.uint8, copy=True)
    im_h, im_w = out.shape[:2]
    if not detections:
        return out
    classes = len(names) if names else max(d.class_id for d in detections) + 1
    by_box: dict[int, list[Detection]] = {}
    for d in detections:
        by_box.setdefault(d.box_id, []).append(d)
    groups = []
    for dets in by_box.values():
        best = max(dets, key=lambda d: d.confidence)  # max() keeps the first of equals
        groups.append((best, dets))
    groups.sort(key=lambda g: g[0].confidence)  # compare_by_probs: best drawn last

    width = max(int(im_h * 0.006), 1)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, max(im_h / 1000.0, 0.35)
    thick = max(int(round(scale * 1.5)), 1)
    for best, dets in groups:
        color = class_color(best.class_id, classes)
        # (b.x - b.w/2.)*im.w in double, truncated to int, clipped (draw_detections_v3)
        left = _to_pixel((best.x - best.w / 2.0) * im_w, im_w - 1)
        right = _to_pixel((best.x + best.w / 2.0) * im_w, im_w - 1)
        top = _to_pixel((best.y - best.h / 2.0) * im_h, im_h - 1)
        bot = _to_pixel((best.y + best.h / 2.0) * im_h, im_h - 1)
        for i in range(width):
            _draw_box(out, left + i, top + i, right - i, bot - i, color)

        parts = [best] + [d for d in dets if d is not best]
        label = ", ".join(
            "%s %.0f%%" % (d.name, float(_F(d.confidence) * _F(100))) for d in parts
        )
        (tw, th), base = cv2.getTextSize(label, font, scale, thick)
        y0 = top - th - base - 2
        if y0 < 0:  # no room above the box: put the label just inside it
            y0 = min(top + width, im_h - 1)
        x1, y1 = left, y0 + th + base + 2
        cv2.rectangle(out, (x1, y0), (x1 + tw + 2, y1), color, cv2.FILLED)
        cv2.putText(out, label, (x1 + 1, y1 - base - 1), font, scale, (0, 0, 0), thick,
                    cv2.LINE_AA)  # fmt: skip
    return out


def save_image(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write a BGR uint8 image with cv2.imwrite; the extension picks the format."""
    try:
        ok = cv2.imwrite(str(path), img)
    except cv2.error as e:
        lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
        raise ImageError(f"{path}: cannot write image ({lines[-1] if lines else e})") from None
    if not ok:
        raise ImageError(f"{path}: cannot write image (unknown extension or unwritable place)")
