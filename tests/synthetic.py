"""Small models, images and videos that the application tests (detector, video, map, TTA, Dask,
pipeline) build for themselves."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

import pydarknet
import pydarknet.image
from pydarknet.weights import write_weights

# 64x64 input, two stride-2 maxpools, one [yolo] on a 16x16 grid; 1x1 convolutions only, so
# the network commutes exactly with a left-right mirror (each output pixel sees one input
# pixel, maxpool windows of an even-sized map mirror onto each other).
MIRROR_CFG = """[net]
width=64
height=64
channels=3

[convolutional]
filters=8
size=1
stride=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=1
stride=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=18
size=1
stride=1
activation=linear

[yolo]
mask=0,1
anchors=10,12, 24,20, 40,44
classes=4
num=3
"""
CLASSES = 4
GAIN = 100.0  # objectness and class logits follow the picture strongly
NAMES = ["circle", "square", "bar", "blob"]


def mirror_model(folder: Path, seed: int = 0, size: int = 64) -> tuple[Path, Path]:
    """(cfg, weights) of MIRROR_CFG at size x size, random weights made to detect a few things.

    The x offset (entry 0 of each anchor) of the last convolution is forced to 0, so
    logistic(tx) = 0.5 and box centres sit on cell centres: a mirrored input then gives
    mirrored boxes. Objectness and class logits are amplified and their biases centred on
    sample scenes so that a handful of boxes per image pass 0.25 and classes differ.
    """
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / f"mirror{size}.cfg"
    text = MIRROR_CFG.replace("width=64", f"width={size}")
    cfg.write_text(text.replace("height=64", f"height={size}"))
    net = pydarknet.Network(cfg)
    arrays = net.random_weights(seed)
    spec = net.param_spec()
    last = max(i for i, _, _ in spec)
    c_in = net.shapes[last - 1][0]
    bias = next(a for (i, name, _), a in zip(spec, arrays) if i == last and name == "biases")
    weights = next(a for (i, name, _), a in zip(spec, arrays) if i == last and name == "weights")
    for anchor in range(2):
        ch = anchor * (5 + CLASSES)
        bias[ch] = 0.0
        weights[ch * c_in : (ch + 1) * c_in] = 0.0
        weights[(ch + 4) * c_in : (ch + 5) * c_in] *= 10 * GAIN
        weights[(ch + 5) * c_in : (ch + 5 + CLASSES) * c_in] *= GAIN
    path = folder / f"mirror{size}-{seed}.weights"
    write_weights(path, arrays)
    # centre objectness so about 2% of cells pass 0.25, and each class logit on its median
    net.load_weights(path)
    x = np.stack([pydarknet.image.prepare(scene(i), size, size, False) for i in range(4)])
    raw = net.forward(x)[0]  # (4, 18, g, g)
    for anchor in range(2):
        ch = anchor * (5 + CLASSES)
        bias[ch + 4] -= np.quantile(raw[:, ch + 4], 0.98) + 1.1  # logit -1.1: obj 0.25
        for k in range(CLASSES):
            bias[ch + 5 + k] -= np.median(raw[:, ch + 5 + k])
    write_weights(path, arrays)
    return cfg, path


def scene(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    """A BGR uint8 picture with a few coloured shapes on a noisy background."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    for _ in range(3):
        color = tuple(int(v) for v in rng.integers(80, 255, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(4, 14))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), r, color, -1)
        else:
            cv2.rectangle(img, (x - r, y - r), (x + r, y + r), color, -1)
    return img


def write_images(folder: Path, n: int, ext: str = ".png", sizes=None) -> list[str]:
    """n scene images (PNG: lossless, so decoding is exact) of varied sizes; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    sizes = sizes or [(48, 64), (64, 64), (40, 72), (64, 48), (33, 57)]
    paths = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        p = folder / f"img{i:03d}{ext}"
        cv2.imwrite(str(p), scene(i, h, w))
        paths.append(str(p))
    return paths


def write_video(path: Path, frames: int, size: tuple[int, int] = (64, 48), fps: float = 10.0
                ) -> list[np.ndarray]:  # fmt: skip
    """An MJPG .avi of moving shapes (works headless); returns the frames as written."""
    w, h = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert vw.isOpened()
    out = []
    for i in range(frames):
        img = scene(1000 + i % 7, h, w)
        vw.write(img)
        out.append(img)
    vw.release()
    return out


def read_video(path: Path | str) -> list[np.ndarray]:
    """Every frame OpenCV decodes from a video file."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames


def key(d) -> tuple:
    """A detection without its box_id (box ids depend on candidate order)."""
    return (d.class_id, d.name, d.confidence, d.x, d.y, d.w, d.h, d.image_w, d.image_h)
