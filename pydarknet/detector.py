"""Detector: load a darknet detector once, call it per image or frame (detector.c test_detector).

Thread safety: one Detector may be shared by any number of threads. Network.forward reuses
preallocated activation buffers, so the forward pass runs under a lock, one at a time;
preparing inputs (resize, letterbox) and decoding outputs (decode, NMS) run outside it, in
parallel. Threads therefore speed up only the pre- and post-processing: for parallel forward
passes use one Detector per thread or per process (pydarknet.distributed does the latter).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import image
from .cfg import read_text
from .errors import DarknetError
from .network import Network, load
from .postprocess import Detection

_BUNDLED_COCO = Path(__file__).resolve().parent / "data" / "coco.names"


def read_names(path: str | os.PathLike, classes: int | None = None) -> list[str]:
    """Class names, one per line, from a .names file or the names= of a darknet .data file."""
    p = Path(path)
    lines = [ln.strip() for ln in read_text(p).splitlines()]
    if p.suffix == ".data":
        for line in lines:
            key, _, value = line.replace(" ", "").partition("=")
            if key == "names":
                target = Path(value)
                return read_names(target if target.is_file() else p.parent / value, classes)
        raise DarknetError(f"{path}: no names= line in the .data file")
    names = [ln for ln in lines if ln]
    if classes is not None and len(names) < classes:
        raise DarknetError(f"{path}: has {len(names)} names but the model has {classes} classes")
    return names


class Detector:
    """A darknet detector: network, weights, class names and thresholds, loaded once.

    >>> det = Detector("cfg/yolov4-tiny.cfg", "weights/yolov4-tiny.weights")
    >>> for d in det(cv2.imread("dog.jpg")):       # BGR uint8, as OpenCV reads it
    ...     print(d.name, d.confidence, d.xyxy)

    Results are exactly those of `darknet detector test` (thresh, nms, the cfg's nms_kind and
    letter_box), listed box by box in the order darknet leaves its dets array after NMS.
    `tta=True` (or a TTA instance) adds test-time augmentation, see pydarknet.tta.
    """

    def __init__(
        self,
        cfg: str | os.PathLike | Network,
        weights: str | os.PathLike | None = None,
        *,
        names: Sequence[str] | str | os.PathLike | None = None,
        thresh: float = 0.25,
        nms: float = 0.45,
        letterbox: bool | None = None,
        hier_thresh: float = 0.5,
        tta=None,
    ):
        if isinstance(cfg, Network):
            if weights is not None:
                cfg.load_weights(weights)
            self.network = cfg
        else:
            self.network = load(cfg, weights)
        net = self.network
        if not net.loaded:
            raise DarknetError("the network has no weights loaded")
        if not net.heads:
            raise DarknetError(f"{net.cfg_path}: has no [yolo] or [region] layer; not a detector")
        self.classes: int = net.layers[net.heads[-1]].classes
        if names is None:
            bundled = self.classes == 80 and _BUNDLED_COCO.is_file()
            names = read_names(_BUNDLED_COCO) if bundled else [str(k) for k in range(self.classes)]
        elif isinstance(names, (str, os.PathLike)):
            names = read_names(names, self.classes)
        if len(names) < self.classes:
            raise DarknetError(f"{len(names)} class names given for {self.classes} classes")
        self.names: list[str] = list(names)
        self.thresh = float(thresh)
        self.nms = float(nms)
        self.hier_thresh = float(hier_thresh)
        self.letterbox: bool = net.letter_box if letterbox is None else bool(letterbox)
        if tta is True:
            from .tta import TTA

            tta = TTA()
        self.tta = tta or None
        self._lock = threading.Lock()

    # -- properties ------------------------------------------------------------------------
    @property
    def width(self) -> int:
        """Network input width ([net] width)."""
        return self.network.width

    @property
    def height(self) -> int:
        """Network input height ([net] height)."""
        return self.network.height

    def __repr__(self) -> str:
        return (f"Detector({self.network.cfg_path!r}, {self.width}x{self.height}, "
                f"{self.classes} classes, thresh={self.thresh}, nms={self.nms}, "
                f"letterbox={self.letterbox}, tta={self.tta!r})")  # fmt: skip

    # -- the calls -------------------------------------------------------------------------
    def __call__(self, image_bgr: np.ndarray) -> list[Detection]:
        """Same as detect(image_bgr)."""
        return self.detect(image_bgr)

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Detections in one BGR uint8 (h, w, 3) image, or in the image file at a path."""
        return self.detect_batch([image_bgr])[0]

    def detect_file(self, path: str | os.PathLike) -> list[Detection]:
        """Detections in one image file (read with cv2.imread, as darknet does)."""
        return self.detect(self.load_image(path))

    def load_image(self, path: str | os.PathLike) -> np.ndarray:
        """An image file as this network takes it: BGR, or gray for a channels=1 network."""
        return image.load_image(path, self.network.channels)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Detections for several images (arrays or file paths), run through the network as
        one batch."""
        images = [image.as_image(im, self.network.channels) for im in images]
        inputs = [self.prepare(im) for im in images]
        sizes = [(im.shape[1], im.shape[0]) for im in images]
        return self.detect_prepared(inputs, sizes)

    def prepare(self, image_bgr: np.ndarray):
        """The network input for one image: float32 (3, H, W), or a TTA's list of inputs.

        Thread-safe and free of shared state, so a loader thread may call it (pipeline.py).
        """
        if self.tta is not None:
            return self.tta.prepare(self, image_bgr)
        return self.network.prepare_image(image_bgr, self.width, self.height, self.letterbox)

    def detect_prepared(self, inputs: Sequence, sizes: Sequence[tuple[int, int]]
                        ) -> list[list[Detection]]:  # fmt: skip
        """Detections from prepare() outputs; sizes are the original images' (w, h)."""
        if len(inputs) != len(sizes):
            raise ValueError("one (w, h) size per input is needed")
        if not len(inputs):
            return []
        if self.tta is not None:
            return [self.tta.detect_prepared(self, x, w, h) for x, (w, h) in zip(inputs, sizes)]
        outs = self.forward(np.stack(inputs))
        return [
            self.finish(*self.candidates([o[b] for o in outs], self.width, self.height, w, h), w, h)
            for b, (w, h) in enumerate(sizes)
        ]  # fmt: skip

    # -- the steps, for pipeline.py and tta.py ----------------------------------------------
    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """Network.forward under this detector's lock: (N, 3, H, W) -> one map per head."""
        with self._lock:
            return self.network.forward(x)  # returns copies, so they outlive the lock

    def candidates(self, outs: Sequence[np.ndarray], net_w: int, net_h: int, im_w: int,
                   im_h: int, flipped: bool = False):  # fmt: skip
        """One image's head maps -> (boxes, objectness, probs), boxes relative to the image.

        Before NMS: darknet's get_network_boxes, head by head in cfg order (yolo_layer.c
        get_yolo_detections, region_layer.c, correct_yolo_boxes). flipped: the input was
        mirrored left-right, so box centres are mirrored back (x -> 1 - x) before the
        letterbox correction.
        """
        return self.network.candidates(outs, im_w, im_h, self.thresh, self.letterbox,
                                       self.hier_thresh, net_w, net_h, flipped)

    def finish(self, boxes: np.ndarray, objs: np.ndarray, probs: np.ndarray, im_w: int,
               im_h: int) -> list[Detection]:  # fmt: skip
        """NMS (the nms_kind of the cfg's last layer, as test_detector) and one Detection per
        (box, class).

        Boxes are listed in the order darknet's dets array has after NMS (box.c), which is
        also the order of darknet's -out JSON and of `detector map`'s bookkeeping.
        """
        return self.network.finish(boxes, objs, probs, im_w, im_h, self.thresh, self.nms,
                                   self.names)
