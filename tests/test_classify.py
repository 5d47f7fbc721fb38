"""Classifiers: darknet53, csdarknet53-omega and efficientnet_b0 against OpenCV 4.x (softmax
probabilities), and `pydarknet classify` (classifier.c predict_classifier: resize_min to the
network width, centre crop, top-k, "%5.2f%%: name" lines)."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

import pydarknet
from pydarknet import image
from pydarknet.cli import main

from .conftest import SHARED

ZOO = SHARED / "cfg"


@pytest.mark.parametrize("stem,size", [("darknet53", 128), ("csdarknet53-omega", 128),
                                       ("efficientnet_b0", 160)])  # fmt: skip
def test_probabilities_match_opencv(stem, size, random_model):
    cfg = ZOO / f"{stem}.cfg"
    if not cfg.exists():
        pytest.skip(f"../shared not found: {cfg} is needed")
    net, weights = random_model(cfg, seed=5)
    x = np.random.default_rng(size).random((1, 3, size, size), dtype=np.float32)
    (ours,) = net.forward(x)
    assert ours.shape == (1, 1000, 1, 1) and ours.dtype == np.float32
    cv = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    cv.setInput(x)
    theirs = np.asarray(cv.forward()).reshape(-1)
    p = ours.reshape(-1)
    assert abs(float(p.sum()) - 1) < 1e-5
    assert float(np.abs(p - theirs).max()) <= 1e-4 * float(theirs.max())
    np.testing.assert_array_equal(np.argsort(-p)[:5], np.argsort(-theirs)[:5])
    assert float(p.max()) > 2e-3  # not a flat distribution: the top-5 ordering means something


TINY = """[net]
width=32
height=24
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[avgpool]

[connected]
output=6
activation=linear

[softmax]

[cost]
type=sse
"""


@pytest.fixture
def tiny(tmp_path):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    net = pydarknet.Network(cfg)
    weights = tmp_path / "tiny.weights"
    net.save_random_weights(weights, seed=2)
    img = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), img)
    names = tmp_path / "names.txt"
    names.write_text("".join(f"class{i}\n" for i in range(6)))
    return net, cfg, weights, path, names, img


def test_classify_resizes_min_side_and_crops_the_centre(tiny):
    net, _, _, _, _, img = tiny
    im = image.to_planar_rgb(img)  # 70x50 -> resize_min(32): 44x32, crop x 6..37, y 4..27
    x = image.resize_image(im, 44, 32)[:, 4:28, 6:38]
    probs = net.forward(x[None])[0].reshape(-1)
    top = net.classify(img, top=6)
    assert [i for i, _ in top] == list(np.argsort(-probs, kind="stable"))
    assert [p for _, p in top] == [float(probs[i]) for i, _ in top]


def test_classify_command_prints_top_k(tiny, capsys):
    net, cfg, weights, path, names, img = tiny
    assert main(["classify", str(cfg), str(path), "--weights", str(weights), "--names",
                 str(names), "--top", "3"]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    top = net.classify(img, top=3)
    assert lines == [f"{float(np.float32(p) * np.float32(100)):5.2f}%: class{i}" for i, p in top]
    assert all(re.fullmatch(r"[ \d]\d\.\d\d%: class\d", line) for line in lines)


def test_classify_rejects_detectors_and_short_names(tiny, tmp_path, capsys):
    _, cfg, weights, path, names, _ = tiny
    names.write_text("a\nb\n")
    assert main(["classify", str(cfg), str(path), "--weights", str(weights), "--names",
                 str(names)]) == 1  # fmt: skip
    assert "has 2 names but the cfg has 6 classes" in capsys.readouterr().err
    det = tmp_path / "det.cfg"
    det.write_text("[net]\nwidth=32\nheight=32\nchannels=3\n\n[convolutional]\nfilters=18\n"
                   "size=1\n\n[yolo]\nmask=0,1\nanchors=1,1,2,2\nnum=2\nclasses=4\n")  # fmt: skip
    pydarknet.Network(det).save_random_weights(tmp_path / "det.weights")
    assert main(["classify", str(det), str(path), "--weights", str(tmp_path / "det.weights")]) == 1
    assert "use `pydarknet detect`" in capsys.readouterr().err
