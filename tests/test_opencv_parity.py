"""Random-weight raw outputs against OpenCV 4.x's Darknet importer, at square and odd sizes."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import CFG
from .oracle import opencv_heads

CASES = [
    ("yolov3-tiny", 416, 416), ("yolov3-tiny", 288, 512),
    ("yolov4-tiny", 416, 416), ("yolov4-tiny", 352, 224),
    ("yolov4-csp", 416, 416), ("yolov4-csp", 256, 384),
    ("yolov4", 416, 416), ("yolov4", 320, 192),
]  # fmt: skip


def assert_close_to_scale(ours: list, theirs: list, rel: float = 1e-3) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape and a.dtype == np.float32
        scale = max(float(np.abs(b).max()), 1e-6)
        assert float(np.abs(a - b).max()) <= rel * scale, (a.shape, np.abs(a - b).max(), scale)


@pytest.mark.parametrize("name,height,width", CASES)
def test_raw_outputs_match_opencv(name, height, width, random_model):
    net, weights = random_model(CFG / f"{name}.cfg", seed=7)
    x = np.random.default_rng(height * width).random((1, 3, height, width), dtype=np.float32)
    ours = net.forward(x)
    assert_close_to_scale(ours, opencv_heads(CFG / f"{name}.cfg", weights, x))


def test_batch_of_two_equals_two_singles(random_model):
    """A batch runs one image per thread, each with one thread's numbers: the same bits as
    single images forwarded on one thread (on several, a layer's split may round otherwise)."""
    from pydarknet import threads

    net, _ = random_model(CFG / "yolov4-tiny.cfg", seed=7)
    x = np.random.default_rng(1).random((2, 3, 224, 288), dtype=np.float32)
    both = net.forward(x)
    before = threads.num_threads()
    try:
        threads.set_num_threads(1)
        for i in range(2):
            single = net.forward(x[i : i + 1])
            for a, b in zip(both, single):
                np.testing.assert_array_equal(a[i : i + 1], b)
    finally:
        threads.set_num_threads(before)
