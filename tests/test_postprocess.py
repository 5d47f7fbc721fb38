"""pydarknet.postprocess against loop ports of yolo_layer.c, region_layer.c and box.c."""

from __future__ import annotations

import numpy as np
import pytest

import pydarknet
from pydarknet import postprocess
from pydarknet.errors import DarknetError
from pydarknet.postprocess import Detection

from . import reference

F = np.float32
ANCHORS = [10, 14, 23, 27, 37, 58, 81, 82, 135, 169, 344, 319]  # yolov4-tiny
VOC_ANCHORS = [1.08, 1.19, 3.42, 4.41, 6.63, 11.38, 9.42, 5.11, 16.62, 10.52]  # yolov2-tiny-voc


def _assert_same(got, want):
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_array_equal(g, w)


# -- decode ------------------------------------------------------------------------------------
@pytest.mark.parametrize("new_coords", [0, 1])
@pytest.mark.parametrize("scale_x_y", [1.0, 1.05, 2.0])
def test_decode_yolo_matches_darknet_loops(new_coords, scale_x_y):
    rng = np.random.default_rng(10 * new_coords + int(scale_x_y * 100))
    n, classes, h, w = 3, 4, 5, 7
    shape = (n * (5 + classes), h, w)
    # new_coords=1 heads follow a logistic conv, so their inputs are in (0, 1)
    raw = rng.random(shape, F) if new_coords else rng.normal(0, 2, shape).astype(F)
    args = (ANCHORS, [1, 2, 3], classes, scale_x_y, new_coords, 416, 320, 0.25)
    got = postprocess.decode_yolo(raw, *args)
    _assert_same(got, reference.decode_yolo(raw, *args))
    boxes, obj, probs = got
    assert len(boxes) > 3 and boxes.shape == (len(obj), 4) and probs.shape == (len(obj), classes)
    assert np.all(obj > F(0.25)) and np.all((probs == 0) | (probs > F(0.25)))


def test_decode_yolo_accepts_anchor_pairs():
    raw = np.random.default_rng(1).normal(0, 3, (2 * 7, 3, 4)).astype(F)
    flat = postprocess.decode_yolo(raw, ANCHORS, [0, 5], 2, 1.0, 0, 64, 64, 0.1)
    pairs = postprocess.decode_yolo(raw, np.array(ANCHORS, F).reshape(-1, 2), [0, 5], 2, 1.0, 0,
                                    64, 64, 0.1)  # fmt: skip
    _assert_same(flat, pairs)


def test_decode_yolo_order_is_cell_major_then_anchor():
    raw = np.zeros((2 * 6, 1, 2), F)  # new_coords=1, 2 anchors, 1 class, 1x2 grid
    raw[4, 0, 1] = raw[4, 0, 0] = 0.9  # anchor 0 in cells 0 and 1
    raw[6 + 4, 0, 0] = 0.8  # anchor 1 in cell 0
    boxes, obj, _ = postprocess.decode_yolo(raw, [10, 10, 20, 20], [0, 1], 1, 1.0, 1, 8, 8, 0.5)
    assert obj.tolist() == [F(0.9), F(0.8), F(0.9)]
    assert boxes[:, 0].tolist() == [0.0, 0.0, 0.5]  # cell 0, cell 0, cell 1


def test_decode_yolo_drops_nan_objectness():
    raw = np.full((1 * 6, 2, 2), 0.9, F)  # new_coords=1: obj 0.9 everywhere
    raw[4, 0, 1] = np.nan
    boxes, obj, probs = postprocess.decode_yolo(raw, [10, 10], [0], 1, 1.0, 1, 32, 32, 0.5)
    assert len(obj) == 3 and not np.isnan(obj).any()


@pytest.mark.parametrize("yolo_point", ["center", "left_top", "right_bottom"])
@pytest.mark.parametrize("scale_x_y", [1.0, 1.1])
def test_decode_gaussian_yolo_matches_darknet_loops(yolo_point, scale_x_y):
    rng = np.random.default_rng(len(yolo_point) + int(scale_x_y * 10))
    n, classes, h, w = 3, 4, 5, 7
    raw = rng.normal(0, 2, (n * (9 + classes), h, w)).astype(F)
    args = (ANCHORS, [0, 2, 5], classes, scale_x_y, yolo_point, 416, 320, 0.2)
    got = postprocess.decode_gaussian_yolo(raw, *args)
    _assert_same(got, reference.decode_gaussian_yolo(raw, *args))
    boxes, obj, probs = got
    assert len(boxes) > 10 and probs.shape == (len(obj), classes)
    assert np.all(obj > F(0.2)) and (probs > 0).any() and np.all((probs == 0) | (probs > F(0.2)))


def test_gaussian_uncertainty_lowers_class_probability():
    raw = np.zeros((1 * (9 + 1), 1, 1), F)  # one anchor, one class, one cell
    raw[8] = raw[9] = 10.0  # objectness and class ~1
    certain, unsure = raw.copy(), raw.copy()
    certain[[1, 3, 5, 7]] = -10.0  # sigmas ~0
    unsure[[1, 3, 5, 7]] = 0.0  # sigmas 0.5: prob halves
    args = ([10, 10], [0], 1, 1.0, "center", 32, 32, 0.1)
    p_certain = postprocess.decode_gaussian_yolo(certain, *args)[2][0, 0]
    p_unsure = postprocess.decode_gaussian_yolo(unsure, *args)[2][0, 0]
    assert p_certain > 0.99 and abs(p_unsure - 0.5) < 1e-3


@pytest.mark.parametrize("softmax", [True, False])
def test_decode_region_matches_darknet_loops(softmax):
    rng = np.random.default_rng(7)
    num, classes, h, w = 5, 3, 4, 6
    raw = rng.normal(0, 2, (num * (5 + classes), h, w)).astype(F)
    args = (VOC_ANCHORS, classes, 4, num, softmax, 416, 416, 0.2)
    got = postprocess.decode_region(raw, *args)
    _assert_same(got, reference.decode_region(raw, *args))
    boxes, obj, probs = got
    assert len(boxes) == h * w * num and np.all(obj == 1)  # every box kept, objectness 1
    assert (probs > 0).any()


# -- correct_boxes -----------------------------------------------------------------------------
def test_correct_boxes_letterbox_wide_image():
    # 640x480 into 416x416: 416/640 < 416/480 -> new 416x312, 52 rows of grey above and below:
    # y = (y - 104/2/416)/0.75, h = h * (1/0.75)
    boxes = np.array([[0.5, 0.5, 0.25, 0.375], [0.25, 0.125, 0.5, 0.75]], F)
    got = postprocess.correct_boxes(boxes, 640, 480, 416, 416, letterbox=True)
    np.testing.assert_array_equal(got, np.array([[0.5, 0.5, 0.25, 0.5], [0.25, 0, 0.5, 1]], F))
    assert got.dtype == np.float32


def test_correct_boxes_letterbox_tall_image():
    boxes = np.array([[0.125, 0.5, 0.375, 0.25]], F)  # 480x640 -> new 312x416, x shifted
    got = postprocess.correct_boxes(boxes, 480, 640, 416, 416, letterbox=True)
    np.testing.assert_array_equal(got, np.array([[0, 0.5, 0.5, 0.25]], F))


@pytest.mark.parametrize("im_w, im_h", [(773, 431), (431, 773), (1920, 1080), (97, 89), (5, 3)])
@pytest.mark.parametrize("net_w, net_h", [(416, 416), (608, 352), (320, 512)])
def test_correct_boxes_matches_darknet_loop(im_w, im_h, net_w, net_h):
    boxes = np.random.default_rng(im_w + net_h).random((30, 4), F)
    for letterbox in (True, False):
        got = postprocess.correct_boxes(boxes, im_w, im_h, net_w, net_h, letterbox)
        want = reference.correct_yolo_boxes(boxes, im_w, im_h, net_w, net_h, letterbox)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("im_w, im_h", [(773, 431), (431, 773), (97, 89), (5, 3)])
@pytest.mark.parametrize("net_w, net_h", [(416, 416), (608, 352)])
def test_correct_boxes_of_gaussian_heads_match_darknet_loop(im_w, im_h, net_w, net_h):
    boxes = np.random.default_rng(im_h + net_w).random((30, 4), F)
    for letterbox in (True, False):
        got = postprocess.correct_boxes(boxes, im_w, im_h, net_w, net_h, letterbox, gaussian=True)
        want = reference.correct_gaussian_yolo_boxes(boxes, im_w, im_h, net_w, net_h, letterbox)
        np.testing.assert_array_equal(got, want)


def test_correct_boxes_without_letterbox_is_identity():
    boxes = np.random.default_rng(3).random((9, 4), F)
    got = postprocess.correct_boxes(boxes, 777, 333, 608, 608, letterbox=False)
    np.testing.assert_array_equal(got, boxes)
    assert got is not boxes


# -- NMS ---------------------------------------------------------------------------------------
def _clustered(seed, n=40, classes=3):
    """Boxes around 4 centres (many overlaps), exact duplicates, tied probs, a few obj == 0."""
    rng = np.random.default_rng(seed)
    centres = rng.random((4, 2)) * 0.6 + 0.2
    xy = centres[rng.integers(0, 4, n)] + rng.normal(0, 0.03, (n, 2))
    wh = 0.1 + rng.random((n, 2)) * 0.2
    boxes = np.concatenate([xy, wh], axis=1).astype(F)
    boxes[5] = boxes[7] = boxes[3]
    levels = np.array([0, 0, 0.3, 0.5, 0.5, 0.7, 0.9], F)
    probs = rng.choice(levels, (n, classes)).astype(F)
    probs[5] = probs[7] = probs[3]
    obj = np.where(rng.random(n) < 0.15, 0, 0.8).astype(F)
    return boxes, obj, probs


NMS_CASES = [("default", 0.6), ("cornersnms", 0.6), ("greedynms", 0.6), ("greedynms", 0.9),
             ("diounms", 0.6), ("diounms", 0.9)]  # fmt: skip


def nms_as_the_darknet_port(boxes, obj, probs, kind, beta):
    """postprocess.nms at 0.45 on a copy of probs, checked against the Darknet port's zeros and
    dets order (reference.py); returns the suppressed probs."""
    if kind == "default":
        want, want_order = reference.do_nms_sort(boxes, obj, probs, 0.45)
    else:
        want, want_order = reference.diounms_sort(boxes, obj, probs, 0.45, kind, beta)
    got = probs.copy()
    order = postprocess.nms(boxes, obj, got, 0.45, kind, beta)
    np.testing.assert_array_equal(got, want)
    assert order.tolist() == want_order
    return got


@pytest.mark.parametrize("kind, beta", NMS_CASES)
@pytest.mark.parametrize("seed", range(3))
def test_nms_matches_darknet_port(kind, beta, seed):
    boxes, obj, probs = _clustered(seed)
    got = nms_as_the_darknet_port(boxes, obj, probs, kind, beta)
    assert (got != probs).any()  # the case does exercise suppression
    # objectness == 0 boxes take no part: their probs are untouched
    np.testing.assert_array_equal(got[obj == 0], probs[obj == 0])


def test_nms_greedy_ignores_beta_and_accepts_short_names():
    boxes, obj, probs = _clustered(5)
    a, b = probs.copy(), probs.copy()
    postprocess.nms(boxes, obj, a, 0.3, "greedynms", 0.6)
    postprocess.nms(boxes, obj, b, 0.3, "greedy", 0.95)
    np.testing.assert_array_equal(a, b)


def test_nms_keeps_the_first_of_tied_duplicates():
    boxes = np.array([[0.5, 0.5, 0.2, 0.2]] * 3, F)
    probs = np.array([[0.5], [0.5], [0.5]], F)
    order = postprocess.nms(boxes, np.ones(3, F), probs, 0.45)
    assert probs[:, 0].tolist() == [0.5, 0, 0] and order.tolist() == [0, 1, 2]


def test_nms_rejects_unknown_kind():
    with pytest.raises(ValueError, match="nms kind 'soft'"):
        postprocess.nms(np.zeros((1, 4), F), np.ones(1, F), np.zeros((1, 1), F), 0.45, "soft")


@pytest.mark.parametrize("seed", range(3))
def test_box_iou_and_diou_match_scalar_ports(seed):
    boxes, _, _ = _clustered(seed, n=25)
    boxes[3, 2:] = 0  # zero-size box: U may be 0, I is 0
    for i in range(len(boxes)):
        iou = postprocess.box_iou(boxes[i], boxes)
        diou = postprocess.box_diou(boxes[i], boxes, 0.6)
        assert iou.dtype == np.float32 and diou.dtype == np.float32
        for j in range(len(boxes)):
            assert iou[j] == reference.box_iou(boxes[i], boxes[j])
            assert diou[j] == reference.box_diou(boxes[i], boxes[j])


# -- output ------------------------------------------------------------------------------------
def _det(k, p, x, y, w, h, box, iw=4, ih=4):
    return Detection(k, f"c{k}", p, x, y, w, h, iw, ih, box)


def test_to_detections_order_names_and_dont_show():
    boxes = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]], F)
    probs = np.array([[0.9, 0.8, 0.1], [0.3, 0.0, 0.26]], F)
    dets = postprocess.to_detections(boxes, probs, 640, 480, ["a", "dont_show_b", "c"], 0.25)
    assert [(d.box_id, d.class_id, d.name) for d in dets] == [(0, 0, "a"), (1, 0, "a"), (1, 2, "c")]
    assert dets[0].confidence == float(F(0.9)) and dets[0].x == float(F(0.1))
    assert (dets[0].image_w, dets[0].image_h) == (640, 480)
    unnamed = postprocess.to_detections(boxes, probs, 640, 480, None, 0.25)
    assert [d.name for d in unnamed] == ["0", "1", "0", "2"]
    with pytest.raises(DarknetError, match="2 class names given for 3 classes"):
        postprocess.to_detections(boxes, probs, 640, 480, ["a", "b"], 0.25)


def test_nms_order_feeds_to_detections_in_darknet_order():
    boxes = np.array([[0.2, 0.2, 0.1, 0.1], [0.8, 0.8, 0.1, 0.1]], F)
    probs = np.array([[0.3], [0.9]], F)
    order = postprocess.nms(boxes, np.ones(2, F), probs, 0.45)
    dets = postprocess.to_detections(boxes[order], probs[order], 10, 10, None, 0.25)
    assert [d.confidence for d in dets] == [float(F(0.9)), float(F(0.3))]


@pytest.mark.parametrize(
    "v, want",
    [(2.5, 3.0), (-2.5, -3.0), (0.5, 1.0), (1.5, 2.0), (-0.5, -1.0), (2.4999, 2.0),
     (-1.2, -1.0), (123.5, 124.0)],
)  # fmt: skip
def test_c_round_halves_away_from_zero(v, want):
    assert postprocess.c_round(v) == want


def test_c_round_keeps_negative_zero_like_printf():
    assert "%4.0f" % postprocess.c_round(-0.3) == "  -0"


def test_format_darknet_lines():
    dets = [
        # box 0: left (0.75-0.125)*4 = 2.5 -> 3 (C round), width 1; classes 0 and 2, 2 is best
        _det(0, 0.5, 0.75, 0.75, 0.25, 0.25, 0),
        _det(2, 0.75, 0.75, 0.75, 0.25, 0.25, 0),
        # box 1: left (-0.5-0.125)*4 = -2.5 -> -3; printed first (smaller left edge)
        _det(1, 0.9, -0.5, 0.375, 0.25, 0.25, 1),
        # box 2: two classes tie at 0.6 -> the first class is the best one; one below thresh
        _det(3, 0.6, 0.5, 0.5, 0.5, 0.5, 2),
        _det(1, 0.6, 0.5, 0.5, 0.5, 0.5, 2),
        _det(0, 0.2, 0.5, 0.5, 0.5, 0.5, 2),
    ]
    assert postprocess.format_darknet(dets, None, 0.25, ext_output=False) == [
        "c1: 90%", "c1: 60%", "c3: 60%", "c2: 75%", "c0: 50%",
    ]  # fmt: skip
    ext = postprocess.format_darknet(dets, ["zero", "one", "two", "three"], 0.25, True)
    assert ext == [
        "one: 90%\t(left_x:   -3   top_y:    1   width:    1   height:    1)",
        "one: 60%\t(left_x:    1   top_y:    1   width:    2   height:    2)",
        "three: 60%",
        "two: 75%\t(left_x:    3   top_y:    3   width:    1   height:    1)",
        "zero: 50%",
    ]


def test_format_darknet_percent_is_printf_rounding():
    # 0.125*100 = 12.5 exactly: printf("%.0f") rounds the tie to even, like Python's %
    lines = postprocess.format_darknet([_det(0, 0.125, 0.5, 0.5, 0.1, 0.1, 0)], None, 0.1)
    assert lines == ["c0: 12%"]


def test_detection_pixels_and_json():
    d = Detection(16, "dog", 0.80656, 0.25, 0.5, 0.5, 0.25, 640, 480, 3)
    assert (d.left, d.top, d.width, d.height) == (0.0, 180.0, 320.0, 120.0)
    assert d.xyxy == (0.0, 180.0, 320.0, 300.0)
    assert d.to_dict()["box_id"] == 3 and d.to_dict()["left"] == 0.0
    assert d.to_darknet_json() == {
        "class_id": 16,
        "name": "dog",
        "relative_coordinates": {"center_x": 0.25, "center_y": 0.5, "width": 0.5, "height": 0.25},
        "confidence": 0.80656,
    }


def test_to_darknet_json_schema_and_its_0005_floor():
    a = Detection(1, "bicycle", float(F(0.1234567)), 1 / 3, 0.5, 0.1, 0.2, 10, 10, 0)
    b = Detection(2, "car", 0.004, 0.5, 0.5, 0.1, 0.1, 10, 10, 1)
    out = postprocess.to_darknet_json([(1, "dog.jpg", [a, b]), (2, "x.jpg", [])])
    assert out == [
        {"frame_id": 1, "filename": "dog.jpg", "objects": [{
            "class_id": 1, "name": "bicycle",
            "relative_coordinates": {"center_x": 0.333333, "center_y": 0.5, "width": 0.1,
                                     "height": 0.2},
            "confidence": 0.123457}]},
        {"frame_id": 2, "filename": "x.jpg", "objects": []},
    ]  # fmt: skip


# -- a [Gaussian_yolo] network, end to end ------------------------------------------------------
GAUSSIAN_CFG = """[net]
width=32
height=32
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters={filters}
size=1
stride=1
activation=linear

[Gaussian_yolo]
mask=1,2
anchors=10,14, 23,27, 37,58
classes=3
num=3
scale_x_y=1.05
yolo_point={point}
nms_kind=diounms
beta_nms=0.6
uc_normalizer=1.0
iou_loss=giou
"""


def _gaussian_net(tmp_path, point="left_top", filters=24, extra=""):
    from pydarknet.weights import write_weights

    cfg = tmp_path / "g.cfg"
    cfg.write_text(GAUSSIAN_CFG.format(filters=filters, point=point) + extra)
    net = pydarknet.Network(cfg)
    write_weights(tmp_path / "g.weights", net.random_weights(5))
    net.load_weights(tmp_path / "g.weights")
    return net


@pytest.mark.parametrize("point", ["center", "left_top", "right_bottom"])
def test_gaussian_yolo_network_decodes_as_darknet(tmp_path, point):
    net = _gaussian_net(tmp_path, point)
    assert net.heads == [3] and net.layers[3].yolo_point == point
    row = net.layers[3].describe((24, 16, 16), (24, 16, 16))
    assert row.startswith("Gaussian_yolo ") and row.endswith("16 x  16 x  24")
    x = np.random.default_rng(1).random((1, 3, 32, 32), F)
    raw = net.forward(x)[0][0]
    assert raw.shape == (24, 16, 16)  # the identity: the map fed into the head
    for letterbox in (False, True):
        boxes, obj, probs = net.candidates([raw], 50, 30, 0.3, letterbox)
        want = reference.decode_gaussian_yolo(raw, [10, 14, 23, 27, 37, 58], [1, 2], 3, 1.05,
                                              point, 32, 32, 0.3)  # fmt: skip
        assert len(want[0]) > 5
        np.testing.assert_array_equal(obj, want[1])
        np.testing.assert_array_equal(probs, want[2])
        np.testing.assert_array_equal(
            boxes, reference.correct_gaussian_yolo_boxes(want[0], 50, 30, 32, 32, letterbox))
    img = (np.random.default_rng(2).random((30, 50, 3)) * 255).astype(np.uint8)
    dets = net.detect(img, thresh=0.05, nms=0.45)
    assert dets and all(0 <= d.class_id < 3 and d.confidence > 0.05 for d in dets)


def test_gaussian_yolo_cfg_errors(tmp_path):
    with pytest.raises(pydarknet.CfgError, match=r"g\.cfg:\d+: \[gaussian_yolo\] classes=3: "
                       r".*len\(mask\)\*\(classes\+9\) = 2\*\(3\+9\) = 24"):
        _gaussian_net(tmp_path, filters=16)
    with pytest.raises(pydarknet.CfgError, match=r"yolo_point=middle: expected center"):
        _gaussian_net(tmp_path, point="middle")
    # parse_gaussian_yolo reads no new_coords: darknet reports it unused, and so do we
    with pytest.warns(UserWarning, match=r"new_coords=1: unused option"):
        _gaussian_net(tmp_path, extra="new_coords=1\n")


# -- a YOLOv1 [detection] network, end to end -------------------------------------------------
@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.parametrize("sqrt", [True, False])
def test_decode_detection_matches_darknet_loops(softmax, sqrt):
    side, num, classes = 3, 2, 4
    raw = np.random.default_rng(5 + softmax + 2 * sqrt).normal(
        0, 1, side * side * (5 * num + classes)).astype(F)  # fmt: skip
    got = postprocess.decode_detection(raw, classes, num, side, softmax, sqrt, 0.1)
    _assert_same(got, reference.decode_detection(raw, classes, num, side, softmax, sqrt, 0.1))
    boxes, _, probs = got
    assert len(boxes) == side * side * num and (probs > 0).any() and (probs == 0).any()


DETECTION_CFG = """[net]
width=16
height=16
channels=3

[convolutional]
filters=4
size=3
stride=2
pad=1
activation=leaky

[connected]
output={output}
activation=linear

[detection]
classes=3
coords=4
rescore=1
side=2
num=2
softmax={softmax}
sqrt=1
jitter=.2
object_scale=1
noobject_scale=.5
class_scale=1
coord_scale=5
"""


@pytest.mark.parametrize("softmax", [0, 1])
def test_detection_network_decodes_as_darknet(tmp_path, softmax):
    from pydarknet.weights import write_weights

    cfg = tmp_path / "v1.cfg"
    cfg.write_text(DETECTION_CFG.format(output=2 * 2 * (5 * 2 + 3), softmax=softmax))
    net = pydarknet.Network(cfg)
    write_weights(tmp_path / "v1.weights", net.random_weights(2))
    net.load_weights(tmp_path / "v1.weights")
    assert net.heads == [2]
    assert net.layers[2].describe((52, 1, 1), (52, 1, 1)).startswith("detection ")
    x = np.random.default_rng(3).random((1, 3, 16, 16), F)
    raw = net.forward(x)[0][0]
    assert raw.shape == (52, 1, 1)
    boxes, obj, probs = net.candidates([raw], 40, 30, 0.05, False)
    _assert_same((boxes, obj, probs), reference.decode_detection(raw, 3, 2, 2, softmax, True, 0.05))
    img = (np.random.default_rng(4).random((30, 40, 3)) * 255).astype(np.uint8)
    dets = net.detect(img, thresh=0.0, nms=0.45)
    assert dets and all(0 <= d.class_id < 3 for d in dets)


def test_detection_cfg_errors(tmp_path):
    cfg = tmp_path / "v1.cfg"
    cfg.write_text(DETECTION_CFG.format(output=50, softmax=0))
    with pytest.raises(pydarknet.CfgError, match=r"v1\.cfg:\d+: \[detection\] side=2: the "
                       r"previous layer gives 50 values but \[detection\] needs .* = 52"):
        pydarknet.Network(cfg)
    cfg.write_text(DETECTION_CFG.format(output=52, softmax=0).replace("coords=4", "coords=2"))
    with pytest.raises(pydarknet.CfgError, match=r"\[detection\] coords=2: only coords=4"):
        pydarknet.Network(cfg)


# -- [contrastive], and the NMS kind of the cfg's last layer -----------------------------------
def test_contrastive_runs_as_darknet_outside_training(tmp_path, monkeypatch):
    from pydarknet.weights import write_weights

    body = GAUSSIAN_CFG.format(filters=2 * (5 + 3), point="center")
    body = body.replace("[Gaussian_yolo]", "[yolo]").replace("yolo_point=center\n", "")
    body = body.replace("nms_kind=diounms", "nms_kind=greedynms")
    kinds = []
    real_nms = postprocess.nms
    monkeypatch.setattr(postprocess, "nms", lambda *a: kinds.append(a[4]) or real_nms(*a))
    img = (np.random.default_rng(2).random((30, 50, 3)) * 255).astype(np.uint8)
    x = np.random.default_rng(1).random((1, 3, 32, 32), F)
    heads = []
    for tail in ("", "\n[contrastive]\nclasses=3\nyolo_layer=-1\ntemperature=1\n"):
        cfg = tmp_path / "c.cfg"
        cfg.write_text(body + tail)
        net = pydarknet.Network(cfg)
        write_weights(tmp_path / "c.weights", net.random_weights(5))
        net.load_weights(tmp_path / "c.weights")
        assert net.heads == [3]
        heads.append(net.forward(x)[0])
        net.detect(img, thresh=0.05)
    np.testing.assert_array_equal(heads[0], heads[1])
    # test_detector takes nms_kind from net.layers[net.n - 1]: the [contrastive] has none
    assert kinds == ["greedynms", "default"]
    cfg.write_text(body + "\n[contrastive]\nclasses=3\n")
    with pytest.raises(pydarknet.CfgError,
                       match=r"\[contrastive\] yolo_layer: must point to a \[yolo\]"):
        pydarknet.Network(cfg)
