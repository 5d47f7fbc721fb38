"""OpenCV 4.x's Darknet importer as an independent oracle (OpenCV 5 removed it)."""

from __future__ import annotations

import numpy as np
import pytest


def opencv_heads(cfg, weights, x: np.ndarray) -> list[np.ndarray]:
    """The raw map fed into each [yolo]/[region] layer, computed by cv2.dnn, in cfg order."""
    import cv2
    if not hasattr(cv2, "dnn") or not hasattr(cv2.dnn, "readNetFromDarknet"):
        pytest.fail(f"OpenCV {cv2.__version__} has no Darknet importer; the test extra pins <5")
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    names = list(net.getLayerNames())
    # OpenCV ends each head with permute_K -> yolo_K (or region_K); the layer before the
    # permute is the last op of the darknet layer that feeds the head.
    heads = sorted((n for n in names if n.startswith("permute_")), key=lambda n: int(n[8:]))
    inputs = [names[names.index(h) - 1] for h in heads]
    net.setInput(np.ascontiguousarray(x, dtype=np.float32))
    return [np.asarray(o) for o in net.forward(inputs)]
