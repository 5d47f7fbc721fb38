"""Test-time augmentation: mirrored passes mirror back box by box, scales map back, one NMS."""

from __future__ import annotations

import numpy as np
import pytest

from pydarknet import image
from pydarknet.detector import Detector
from pydarknet.errors import DarknetError
from pydarknet.tta import TTA

from .conftest import CFG, need_shared
from .synthetic import NAMES, key, mirror_model, scene


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return mirror_model(tmp_path_factory.mktemp("tta"))


def _rows(boxes, objs, probs):
    """Candidates as sorted rows, to compare sets whose order differs."""
    return np.array(sorted(np.c_[boxes, objs, probs].tolist()))


@pytest.mark.parametrize("seed", [0, 3, 5])
def test_mirrored_pass_mirrors_back_box_by_box(model, seed):
    cfg, weights = model
    t = TTA(scales=(1.0,), flip=True)
    det = Detector(cfg, weights, names=NAMES, tta=t)
    img = scene(seed)
    (batch,) = t.prepare(det, img)
    np.testing.assert_array_equal(batch[1], batch[0][:, :, ::-1])  # the network sees the mirror
    plain, mirrored = t.passes(det, [batch], img.shape[1], img.shape[0])
    assert (plain[:3], mirrored[:3]) == ((64, 64, False), (64, 64, True))
    assert len(plain[3]) > 3 and len(plain[3]) == len(mirrored[3])
    # this network commutes with a mirror, so the mirrored pass, mapped back, finds the same
    # candidates (in mirrored cell order): compare them box by box
    a, b = _rows(*plain[3:]), _rows(*mirrored[3:])
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)  # GEMM sums in another order
    # and the un-mirroring is x -> 1 - x: the raw mirrored boxes sit at 1 - x
    raw = det.candidates([m[1] for m in det.forward(batch)], 64, 64, 64, 64, flipped=False)[0]
    np.testing.assert_allclose(np.sort(1 - raw[:, 0]), np.sort(plain[3][:, 0]), atol=1e-7)


def test_duplicates_from_the_mirror_collapse_in_nms(model):
    cfg, weights = model
    plain = Detector(cfg, weights, names=NAMES)
    tta = Detector(cfg, weights, names=NAMES, tta=TTA(scales=(1.0,), flip=True))
    for seed in range(4):
        img = scene(seed)
        want, got = plain(img), tta(img)
        assert len(got) == len(want) > 0
        for w, g in zip(want, got):
            assert (g.class_id, g.name) == (w.class_id, w.name)
            np.testing.assert_allclose(key(g)[2:], key(w)[2:], rtol=1e-4, atol=1e-6)


def test_scales_are_plain_runs_at_other_sizes_merged_before_one_nms(model, tmp_path):
    cfg, weights = model
    t = TTA(scales=(1.0, 2.0), flip=False)
    det = Detector(cfg, weights, names=NAMES, tta=t)
    assert t.sizes(det) == [(64, 64), (128, 128)]
    img = scene(2, 50, 70)
    passes = t.passes(det, t.prepare(det, img), 70, 50)
    assert [p[:3] for p in passes] == [(64, 64, False), (128, 128, False)]
    # pass 2 is exactly what a plain detector built for 128x128 finds before NMS
    cfg128, _ = mirror_model(tmp_path, size=128)
    big = Detector(cfg128, weights, names=NAMES)
    x = image.prepare(img, 128, 128, False)[None]
    want = big.candidates([o[0] for o in big.forward(x)], 128, 128, 70, 50)
    for got, w in zip(passes[1][3:], want):
        np.testing.assert_array_equal(got, w)
    # the result is one NMS over the concatenated candidates, scale by scale
    merged = [np.concatenate([p[k] for p in passes]) for k in (3, 4, 5)]
    expect = Detector(cfg, weights, names=NAMES).finish(*merged, 70, 50)
    assert [key(d) for d in det(img)] == [key(d) for d in expect]


def test_sizes_round_to_the_stride_and_refuse_bad_scales(model):
    cfg, weights = model
    det = Detector(cfg, weights)
    assert TTA(scales=(1.0, 0.75, 1.25, 1.0)).sizes(det) == [(64, 64), (48, 48), (80, 80)]
    assert TTA(scales=(0.01,)).sizes(det) == [(4, 4)]  # at least one stride
    with pytest.raises(DarknetError, match="TTA scale 0"):
        TTA(scales=(0.0,)).sizes(det)


def test_tta_on_the_sample_images_refines_the_plain_detections():
    """Every plain detection survives or gives way to a same-class TTA box that overlaps it
    and scores at least as high: TTA adds and refines, it does not lose objects."""
    weights = need_shared("weights", "yolov3-tiny.weights")
    plain = Detector(CFG / "yolov3-tiny.cfg", weights)
    tta = Detector(plain.network, tta=True)
    from pydarknet.postprocess import box_iou

    for name in ("dog.jpg", "person.jpg"):
        img = image.load_image(need_shared("images", name))
        want, got = plain(img), tta(img)
        assert len(got) >= len(want) > 0
        for w in want:
            same = [g for g in got if g.class_id == w.class_id]
            assert same, f"{name}: {w.name} lost"
            ious = box_iou(np.array([w.x, w.y, w.w, w.h], np.float32),
                           np.array([[g.x, g.y, g.w, g.h] for g in same], np.float32))  # fmt: skip
            best = int(np.argmax(ious))
            # TTA's passes run as a batch, one image per thread, so its layers' steps differ
            # from the plain forward's split over threads: float rounding apart (~1e-6)
            assert ious[best] > 0.45 and same[best].confidence >= w.confidence - 1e-5, name
