"""The Darknet detector zoo in ../shared/cfg: every cfg builds and runs; every detector cfg that
OpenCV 4.x's importer loads gives the same raw head outputs with random weights (within 1e-3 of
each head's scale) at a reduced input size.

OpenCV cannot load two of them: yolov4-sam-mish-csp-reorg-bfm ([reorg3d] is not in its importer)
and cspx-p7-mish (its 5th [yolo] lists 20 anchors with num=16; OpenCV asserts num*2 anchors).
Darknet itself reads only num*2 = 32 anchor values there, so mask 16..19 indexes past its biases
array; pydarknet keeps all 20 listed anchors. Raw outputs do not depend on anchors, so P7 is
compared with OpenCV through a copy of the cfg that says num=20. [reorg3d] and [sam] are tested
against literal ports of darknet's C in test_layers.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import pydarknet

from .conftest import CFG, SHARED
from .oracle import opencv_heads
from .test_opencv_parity import CASES as CORE_CASES
from .test_opencv_parity import assert_close_to_scale

ZOO = SHARED / "cfg"
CLASSIFIERS = {"darknet53", "csdarknet53-omega", "efficientnet_b0"}
# detector cfg -> (height, width) of the OpenCV comparison; P6/P7 need multiples of 64/128
CASES = {
    "yolov2": (320, 224), "yolov2-tiny": (256, 256), "yolov3": (256, 256),
    "yolov3-spp": (256, 256), "yolov3-tiny-prn": (224, 288), "yolov4-tiny-3l": (256, 256),
    "yolov4-csp-swish": (256, 256), "yolov4x-mish": (256, 256), "yolov4-p5": (256, 256),
    "yolov4-p6": (256, 256), "cspx-p7-mish": (256, 256), "yolov7": (256, 256),
    "yolov7-tiny": (256, 320), "enet-coco": (256, 256),
}  # fmt: skip
NOT_IN_OPENCV = {"yolov4-sam-mish-csp-reorg-bfm"}
# the project's own copies in cfg/ (same architecture, checked by test_cfgfiles.py) are compared
# with OpenCV in test_opencv_parity.py
CORE = {name for name, _, _ in CORE_CASES}


def shared_stems() -> list[str]:
    if not ZOO.is_dir():
        return []
    return sorted(p.stem for p in ZOO.glob("*.cfg"))


def test_every_shared_detector_cfg_is_covered():
    if not ZOO.is_dir():
        pytest.skip("../shared not found: ../shared/cfg is needed")
    detectors = set(shared_stems()) - CLASSIFIERS
    assert detectors == set(CASES) | NOT_IN_OPENCV | CORE


def load_quietly(path):
    """Network(path), tolerating darknet's own "unused option" warnings (sam-mish's beta1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydarknet.Network(path)


@pytest.mark.parametrize("stem", shared_stems())
def test_every_shared_cfg_builds(stem):
    net = load_quietly(ZOO / f"{stem}.cfg")
    assert net.num_params() > 0
    assert (stem in CLASSIFIERS) == (not net.heads)
    out = net.shapes[net.output_layers[-1]]
    if stem in CLASSIFIERS:
        assert out == (1000, 1, 1)
    else:
        assert out[0] == 3 * (80 + 5) or out[0] == 4 * (80 + 5) or out[0] == 5 * (80 + 5)


@pytest.mark.parametrize("stem", sorted(CASES))
def test_raw_outputs_match_opencv(stem, random_model, tmp_path):
    cfg = ZOO / f"{stem}.cfg"
    if not cfg.exists():
        pytest.skip(f"../shared not found: {cfg} is needed")
    height, width = CASES[stem]
    net, weights = random_model(cfg, seed=11)
    oracle_cfg = cfg
    if stem == "cspx-p7-mish":
        oracle_cfg = tmp_path / "p7-for-opencv.cfg"
        oracle_cfg.write_text(cfg.read_text().replace("num=16", "num=20"))
    x = np.random.default_rng(height + width).random((1, 3, height, width), dtype=np.float32)
    ours = net.forward(x)
    theirs = opencv_heads(oracle_cfg, weights, x)
    assert_close_to_scale(ours, theirs)
    for a in ours:  # the comparison means something: heads are neither flat nor saturated
        assert float(a.std()) > 0.02
        if net.layers[net.heads[0] - 1].activation == pydarknet.layers.ACTIVATIONS["logistic"]:
            assert float(np.mean((a > 0.01) & (a < 0.99))) > 0.9


def test_p7_keeps_all_listed_anchors():
    net = pydarknet.Network(CFG / "yolov4-p7.cfg")
    last = net.layers[net.heads[-1]]
    assert last.mask == [16, 17, 18, 19] and last.anchors.shape == (20, 2)
    assert last.anchors[19].tolist() == [1408, 1408]


def test_sam_mish_csp_reorg_runs(tmp_path):
    """yolov4-sam-mish-csp-reorg-bfm: [reorg3d] x6 and [sam] x3; OpenCV cannot load it."""
    cfg = ZOO / "yolov4-sam-mish-csp-reorg-bfm.cfg"
    if not cfg.exists():
        pytest.skip(f"../shared not found: {cfg} is needed")
    with pytest.warns(UserWarning, match=r"reorg-bfm\.cfg:\d+: \[yolo\] beta1=0\.6: unused"):
        net = pydarknet.Network(cfg)  # darknet's parse_yolo does not read beta1 either
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.save_random_weights(tmp_path / "w.weights", seed=3)
    outs = net.forward(np.random.default_rng(0).random((1, 3, 256, 192), dtype=np.float32))
    assert [o.shape for o in outs] == [(1, 255, 32, 24), (1, 255, 16, 12), (1, 255, 8, 6)]
    assert all(np.isfinite(o).all() and o.std() > 0.02 for o in outs)
