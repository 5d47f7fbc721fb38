"""From detection-head maps to darknet's detections: decode, letterbox correction, NMS, output.

Mirrors src/yolo_layer.c (forward_yolo_layer, get_yolo_box, get_yolo_detections,
correct_yolo_boxes), src/region_layer.c (AlexeyAB's get_region_boxes), src/box.c (do_nms_sort,
diounms_sort, box_iou, box_diou, box_diounms), src/image.c (draw_detections_v3) and
src/network.c (detection_to_json). Arithmetic is float32 where darknet uses float and float64
where C promotes to double (exp(), pow(), the letterbox shift), so boxes and scores match the
C code bit for bit. Plain NumPy: the only loops left are darknet's greedy NMS loops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from . import kernels
from .errors import DarknetError

_F = np.float32
_D = np.float64


@dataclass(frozen=True)
class Detection:
    """One (box, class) pair above threshold, as one object of darknet's -out JSON."""

    class_id: int
    name: str  # class name; str(class_id) when no names were given
    confidence: float  # objectness * class prob
    x: float  # box centre x, relative to the image width (darknet bbox.x, unclipped)
    y: float
    w: float
    h: float
    image_w: int
    image_h: int
    box_id: int  # index of the darknet box; classes of one box share it

    @property
    def left(self) -> float:
        """Left edge in pixels (unclipped)."""
        return (self.x - self.w / 2) * self.image_w

    @property
    def top(self) -> float:
        """Top edge in pixels (unclipped)."""
        return (self.y - self.h / 2) * self.image_h

    @property
    def width(self) -> float:
        """Width in pixels."""
        return self.w * self.image_w

    @property
    def height(self) -> float:
        """Height in pixels."""
        return self.h * self.image_h

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        """(x1, y1, x2, y2) in pixels, unclipped."""
        return (self.left, self.top, self.left + self.width, self.top + self.height)

    def to_dict(self) -> dict:
        """All fields plus the pixel box (left, top, width, height)."""
        d = asdict(self)
        d.update(left=self.left, top=self.top, width=self.width, height=self.height)
        return d

    def to_darknet_json(self) -> dict:
        """One object of darknet's -out JSON; floats rounded as printf("%f") (network.c)."""
        return {
            "class_id": self.class_id,
            "name": self.name,
            "relative_coordinates": {
                "center_x": round(self.x, 6),
                "center_y": round(self.y, 6),
                "width": round(self.w, 6),
                "height": round(self.h, 6),
            },
            "confidence": round(self.confidence, 6),
        }


# -- decoding ----------------------------------------------------------------------------------
def logistic(x: np.ndarray) -> np.ndarray:
    """1.f/(1.f + expf(-x)) in float32 (activations.h logistic_activate).

    expf is taken as exp in double rounded to float (glibc's expf is correctly rounded; NumPy's
    own float32 exp is not always), then the add and divide are float32 as in C.
    """
    with np.errstate(over="ignore"):
        e = np.exp(-np.asarray(x, _D)).astype(_F)
    return _F(1) / (_F(1) + e)


def _exp_box(t: np.ndarray, anchor: np.ndarray, size: float) -> np.ndarray:
    """exp(t) * anchor / size: C's exp() is double, so the product is double, stored as float."""
    with np.errstate(over="ignore"):
        return (np.exp(t.astype(_D)) * anchor.astype(_D) / _D(size)).astype(_F)


def decode_yolo(
    raw: np.ndarray,
    anchors,
    mask: Sequence[int],
    classes: int,
    scale_x_y: float,
    new_coords: int,
    net_w: int,
    net_h: int,
    thresh: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates of one [yolo] head for one image (yolo_layer.c).

    raw: (len(mask)*(5+classes), h, w) float32, the map that feeds [yolo], laid out
    [anchor][entry][h][w]. Returns boxes (M, 4) xywh relative to the network input,
    objectness (M,) and probs (M, classes), in get_yolo_detections order: cell-major
    (row-major over h*w), then anchor. A candidate needs objectness > thresh (strict, so NaN
    is dropped); prob = objectness*class, kept only if > thresh.
    """
    n = len(mask)
    c, lh, lw = raw.shape
    if c != n * (5 + classes):
        raise ValueError(f"[yolo] map has {c} channels, expected {n}*(5+{classes})")
    biases = np.asarray(anchors, _F).reshape(-1)  # darknet l.biases: w0,h0,w1,h1,...
    x = np.asarray(raw, dtype=_F).reshape(n, 5 + classes, lh * lw)

    # forward_yolo_layer: new_coords=0 -> logistic on x,y and on obj+classes (w,h stay raw);
    # new_coords=1 -> no activation (the conv before it already has activation=logistic).
    # Objectness picks the candidates, so only theirs get the other entries' activations:
    # the same values, for a few hundred entries instead of the whole map (1.4 -> 0.1 ms a
    # yolov3-tiny image).
    objectness = x[:, 4] if new_coords else logistic(x[:, 4])  # (n, h*w)
    # get_yolo_detections walks cells i, then anchors n: put candidates in (cell, anchor) order
    t = _F(thresh)
    cell, a = np.nonzero(objectness.T > t)  # row-major: cell-major, then anchor
    e = x[a, :, cell]  # (M, 5+classes), a copy
    obj = objectness[a, cell]
    if not new_coords:
        e[:, 0:2] = logistic(e[:, 0:2])
        e[:, 5:] = logistic(e[:, 5:])
    # scal_add_cpu(x*alpha + beta); beta = -0.5*(scale_x_y - 1) is double, passed as float
    alpha = _F(scale_x_y)
    beta = _F(-0.5 * float(alpha - _F(1)))
    e[:, 0:2] = e[:, 0:2] * alpha + beta

    mask_a = np.asarray(mask, np.intp)[a]
    aw, ah = biases[2 * mask_a], biases[2 * mask_a + 1]
    boxes = np.empty((len(cell), 4), _F)
    # get_yolo_box: (i + x)/lw in float; i is the column, j the row
    boxes[:, 0] = ((cell % lw).astype(_F) + e[:, 0]) / _F(lw)
    boxes[:, 1] = ((cell // lw).astype(_F) + e[:, 1]) / _F(lh)
    if new_coords:
        # x*x*4*bias/w, float throughout, left to right
        boxes[:, 2] = e[:, 2] * e[:, 2] * _F(4) * aw / _F(net_w)
        boxes[:, 3] = e[:, 3] * e[:, 3] * _F(4) * ah / _F(net_h)
    else:
        boxes[:, 2] = _exp_box(e[:, 2], aw, net_w)
        boxes[:, 3] = _exp_box(e[:, 3], ah, net_h)

    probs = obj[:, None] * e[:, 5:]
    probs[~(probs > t)] = 0
    return boxes, obj, probs


def decode_gaussian_yolo(
    raw: np.ndarray,
    anchors,
    mask: Sequence[int],
    classes: int,
    scale_x_y: float,
    yolo_point: str,
    net_w: int,
    net_h: int,
    thresh: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates of one [Gaussian_yolo] head for one image (gaussian_yolo_layer.c), as
    decode_yolo's: boxes (M, 4) xywh relative to the network input, objectness (M,), probs
    (M, classes), cell-major then anchor, objectness > thresh.

    raw: (len(mask)*(9+classes), h, w), per anchor the entries x, sx, y, sy, w, sw, h, sh,
    objectness, classes (s = the uncertainty of the coordinate before it).
    forward_gaussian_yolo_layer: logistic on every entry but w and h, then x and y scaled by
    scale_x_y. get_gaussian_yolo_detections: prob = objectness * class * (1 - uc_aver) with
    uc_aver = (sx + sy + sw + sh) / 4, kept if > thresh. yolo_point left_top / right_bottom:
    (x, y) is that corner of the box, so the centre is half the box size away.
    """
    n = len(mask)
    c, lh, lw = raw.shape
    if c != n * (9 + classes):
        raise ValueError(f"[Gaussian_yolo] map has {c} channels, expected {n}*(9+{classes})")
    biases = np.asarray(anchors, _F).reshape(-1)
    x = np.asarray(raw, dtype=_F).reshape(n, 9 + classes, lh * lw)
    objectness = logistic(x[:, 8])  # (n, h*w)
    t = _F(thresh)
    cell, a = np.nonzero(objectness.T > t)  # cell-major, then anchor
    e = x[a, :, cell]  # (M, 9+classes), a copy
    obj = objectness[a, cell]
    squashed = np.r_[0, 1, 2, 3, 5, 7, 9 : 9 + classes]  # all but w (4) and h (6); 8 is obj
    e[:, squashed] = logistic(e[:, squashed])
    alpha = _F(scale_x_y)
    beta = _F(-0.5 * float(alpha - _F(1)))
    e[:, [0, 2]] = e[:, [0, 2]] * alpha + beta

    mask_a = np.asarray(mask, np.intp)[a]
    boxes = np.empty((len(cell), 4), _F)
    boxes[:, 2] = _exp_box(e[:, 4], biases[2 * mask_a], net_w)
    boxes[:, 3] = _exp_box(e[:, 6], biases[2 * mask_a + 1], net_h)
    # get_gaussian_yolo_box: (i + x)/lw in float, then +- b.w/2 for a corner point
    boxes[:, 0] = ((cell % lw).astype(_F) + e[:, 0]) / _F(lw)
    boxes[:, 1] = ((cell // lw).astype(_F) + e[:, 2]) / _F(lh)
    if yolo_point != "center":
        sign = _F(1) if yolo_point == "left_top" else _F(-1)
        boxes[:, 0] += sign * (boxes[:, 2] / _F(2))
        boxes[:, 1] += sign * (boxes[:, 3] / _F(2))

    # uc_aver: a float sum / 4.0 (double), stored as float; prob = (obj*class, a float)
    # * (1.0 - uc_aver) in double, stored as float
    total = ((e[:, 1] + e[:, 3]) + e[:, 5]) + e[:, 7]
    uc_aver = (total.astype(_D) / 4.0).astype(_F)
    probs = ((obj[:, None] * e[:, 9:]).astype(_D) * (1.0 - uc_aver.astype(_D))[:, None])
    probs = probs.astype(_F)
    probs[~(probs > t)] = 0
    return boxes, obj, probs


def _softmax_rows(x: np.ndarray) -> np.ndarray:
    """blas.c softmax(temp=1) on the last axis: exp in double, float sum in class order."""
    largest = x.max(axis=-1, keepdims=True)
    with np.errstate(over="ignore"):
        e = np.exp((x - largest).astype(_D)).astype(_F)
    total = np.zeros(x.shape[:-1], _F)
    for j in range(x.shape[-1]):  # sequential float accumulation, as `sum += e`
        total += e[..., j]
    return e / total[..., None]


def decode_region(
    raw: np.ndarray,
    anchors,
    classes: int,
    coords: int,
    num: int,
    softmax: bool,
    net_w: int,
    net_h: int,
    thresh: float,
    hier_thresh: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes of one yolov2 [region] head for one image (AlexeyAB region_layer.c + network.c).

    forward_region_layer: logistic on objectness, softmax over classes if softmax=1 (AlexeyAB
    applies nothing to classes otherwise); get_region_box: x = (col + logistic(tx))/lw,
    w = exp(tw)*anchor_w/lw with anchors in grid cells. custom_get_region_detections keeps
    every cell x anchor (M = h*w*num) with objectness 1, so NMS never sets a region box aside;
    hier_thresh only matters for softmax trees, which are not supported. net_w/net_h are
    unused (boxes are relative to the grid, i.e. to the network input).
    """
    c, lh, lw = raw.shape
    if coords != 4:
        raise ValueError(f"[region] coords={coords}: only 4 is supported")
    if c != num * (coords + 1 + classes):
        raise ValueError(f"[region] map has {c} channels, expected {num}*(5+{classes})")
    biases = np.asarray(anchors, _F).reshape(-1)
    # flatten() to [cell][anchor][entry]: box index = cell*num + anchor
    v = np.asarray(raw, _F).reshape(num, 5 + classes, lh * lw).transpose(2, 0, 1)
    v = v.reshape(lh * lw * num, 5 + classes)
    cell = np.repeat(np.arange(lh * lw), num)
    a = np.tile(np.arange(num), lh * lw)

    scale = logistic(v[:, 4])
    cls = _softmax_rows(v[:, 5:]) if softmax else v[:, 5:].copy()
    boxes = np.empty((len(v), 4), _F)
    boxes[:, 0] = ((cell % lw).astype(_F) + logistic(v[:, 0])) / _F(lw)
    boxes[:, 1] = ((cell // lw).astype(_F) + logistic(v[:, 1])) / _F(lh)
    boxes[:, 2] = _exp_box(v[:, 2], biases[2 * a], lw)
    boxes[:, 3] = _exp_box(v[:, 3], biases[2 * a + 1], lh)

    probs = scale[:, None] * cls
    probs[~(probs > _F(thresh))] = 0
    return boxes, np.ones(len(v), _F), probs


def decode_detection(
    raw: np.ndarray,
    classes: int,
    num: int,
    side: int,
    softmax: bool,
    sqrt: bool,
    thresh: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes of a YOLOv1 [detection] head for one image (detection_layer.c), relative to the
    network input: get_detection_detections(l, 1, 1, ...), as `darknet yolo test` calls it.

    raw: the flat input, side*side*classes class scores (cell-major), then side*side*num
    scales, then side*side*num boxes of 4. forward_detection_layer: softmax over each cell's
    classes if softmax=1. Box (cell i, box n): x = (tx + col)/side, w = tw^2 if sqrt else tw
    (pow() in double: tw*tw exactly, stored as float); prob = scale*class, kept if > thresh.
    Every cell x box is kept, in (cell, box) order, with objectness = its scale.
    """
    cells = side * side
    flat = np.asarray(raw, _F).reshape(-1)
    if flat.size != cells * (5 * num + classes):
        raise ValueError(f"[detection] input has {flat.size} values, expected "
                         f"{side}*{side}*(5*{num}+{classes})")  # fmt: skip
    cls = flat[: cells * classes].reshape(cells, classes)
    if softmax:
        cls = _softmax_rows(cls)
    scale = flat[cells * classes : cells * (classes + num)].copy()  # (cell*num + n,)
    coords = flat[cells * (classes + num) :].reshape(cells * num, 4)
    cell = np.repeat(np.arange(cells), num)
    boxes = np.empty((cells * num, 4), _F)
    boxes[:, 0] = (coords[:, 0] + (cell % side).astype(_F)) / _F(side)
    boxes[:, 1] = (coords[:, 1] + (cell // side).astype(_F)) / _F(side)
    boxes[:, 2:] = coords[:, 2:] * coords[:, 2:] if sqrt else coords[:, 2:]
    probs = scale[:, None] * cls[cell]
    probs[~(probs > _F(thresh))] = 0
    return boxes, scale, probs


def correct_boxes(
    boxes: np.ndarray, im_w: int, im_h: int, net_w: int, net_h: int, letterbox: bool,
    gaussian: bool = False,
) -> np.ndarray:
    """Network-relative boxes -> image-relative boxes (yolo_layer.c correct_yolo_boxes, relative=1).

    Without letterbox this is the identity. With it, the image occupies new_w x new_h of the
    network input (integer sizes, as letterbox_image made them), centred. gaussian: the
    boxes of a [Gaussian_yolo] head, whose correct_gaussian_yolo_boxes scales w and h by
    netw/new_w where correct_yolo_boxes takes 1/(new_w/netw) (float roundings differ).
    """
    if letterbox:
        if _F(net_w) / _F(im_w) < _F(net_h) / _F(im_h):
            new_w, new_h = net_w, (im_h * net_w) // im_w
        else:
            new_w, new_h = (im_w * net_h) // im_h, net_h
    else:
        new_w, new_h = net_w, net_h
    deltaw, deltah = _F(net_w - new_w), _F(net_h - new_h)
    ratiow, ratioh = _F(new_w) / _F(net_w), _F(new_h) / _F(net_h)
    b = np.array(boxes, dtype=_F).reshape(-1, 4)
    # b.x = (b.x - deltaw/2./netw) / ratiow: the shift is double, so the whole line is
    b[:, 0] = ((b[:, 0].astype(_D) - _D(deltaw) / 2.0 / net_w) / _D(ratiow)).astype(_F)
    b[:, 1] = ((b[:, 1].astype(_D) - _D(deltah) / 2.0 / net_h) / _D(ratioh)).astype(_F)
    if gaussian:  # b.w *= (float)netw/new_w
        b[:, 2] *= _F(net_w) / _F(new_w)
        b[:, 3] *= _F(net_h) / _F(new_h)
        return b
    # b.w *= 1/ratiow: a float reciprocal, then a float multiply
    b[:, 2] *= _F(1) / ratiow
    b[:, 3] *= _F(1) / ratioh
    return b


# -- NMS ---------------------------------------------------------------------------------------
def _edges(boxes: np.ndarray) -> np.ndarray:
    """(K, 4) xywh -> (7, K) float32 rows left, right, top, bot, area, x, y.

    box.c recomputes x - w/2 (etc.) for every pair; the float32 values are the same each time,
    so computing them once per box changes nothing but the speed.
    """
    x, y, w, h = np.asarray(boxes, _F).reshape(-1, 4).T
    half_w, half_h = w / _F(2), h / _F(2)
    return np.stack([x - half_w, x + half_w, y - half_h, y + half_h, w * h, x, y])


def _iou(ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
    """box_iou of one box (edges (7,)) with many (edges (7, K)) (box.c overlap, intersection)."""
    left = np.where(ea[0] > eb[0], ea[0], eb[0])
    right = np.where(ea[1] < eb[1], ea[1], eb[1])
    top = np.where(ea[2] > eb[2], ea[2], eb[2])
    bot = np.where(ea[3] < eb[3], ea[3], eb[3])
    w, h = right - left, bot - top
    inter = np.where((w < 0) | (h < 0), _F(0), w * h)
    union = ea[4] + eb[4] - inter  # a.w*a.h + b.w*b.h - i
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((inter == 0) | (union == 0), _F(0), iou)  # box_iou's I == 0 || U == 0


def _diou(ea: np.ndarray, eb: np.ndarray, exponent: float) -> np.ndarray:
    """IoU - (d²/c²)**exponent, c the diagonal of the enclosing box (box.c box_diou, box_c).

    pow() is double in C: d/c is a float promoted to double and the result stored as float.
    """
    w = np.fmax(ea[1], eb[1]) - np.fmin(ea[0], eb[0])  # box_c: fmin/fmax of float edges
    h = np.fmax(ea[3], eb[3]) - np.fmin(ea[2], eb[2])
    c = w * w + h * h
    dx, dy = ea[5] - eb[5], ea[6] - eb[6]
    d = dx * dx + dy * dy
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.power((d / c).astype(_D), exponent).astype(_F)
    iou = _iou(ea, eb)
    return np.where(c == 0, iou, iou - u)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box a (4,) with boxes b (K, 4), float32; 0 when I == 0 or U == 0 (box.c box_iou)."""
    return _iou(_edges(a)[:, 0], _edges(b))


def box_diou(a: np.ndarray, b: np.ndarray, beta: float) -> np.ndarray:
    """DIoU of box a (4,) with boxes b (K, 4): box_diou with beta=0.6, else box_diounms."""
    return _diou(_edges(a)[:, 0], _edges(b), beta)


# cfg nms_kind -> criterion; the short names are accepted too (parser.c parse_yolo)
_NMS_KINDS = {
    "default": "iou", "cornersnms": "iou", "corners": "iou",
    "greedynms": "greedy", "greedy": "greedy",
    "diounms": "diou", "diou": "diou",
}  # fmt: skip


def nms(
    boxes: np.ndarray,
    objectness: np.ndarray,
    probs: np.ndarray,
    thresh: float,
    kind: str = "default",
    beta: float = 0.6,
) -> np.ndarray:
    """Darknet's greedy per-class NMS, zeroing probs (M, classes) float32 in place (box.c).

    kind is the cfg nms_kind of the last head: default (do_nms_sort) and cornersnms suppress on
    IoU > thresh; greedynms on DIoU with the exponent fixed at 0.6; diounms on DIoU with beta
    (beta_nms) as exponent. Boxes must already be image-relative, as in darknet.

    Returns the order darknet's dets array is left in (boxes with objectness 0 swapped to the
    end, then one stable sort per class, each starting from the previous one's order): darknet
    prints its -out JSON in that order, so pass boxes[order], probs[order] to to_detections.
    """
    crit = _NMS_KINDS.get(kind)
    if crit is None:
        raise ValueError(f"nms kind {kind!r}: expected one of {', '.join(_NMS_KINDS)}")
    if probs.dtype != _F or probs.ndim != 2 or len(probs) != len(boxes):
        raise ValueError("nms needs probs as a float32 (M, classes) array matching boxes")
    edges = _edges(boxes)  # (7, M)
    t = _F(thresh)
    exponent = 0.6 if crit == "greedy" else float(_F(beta))  # greedy: literal 0.6 (double)
    total = len(boxes)
    order = np.arange(total)

    # move objectness == 0 entries to the end with darknet's swap loop (it reorders the rest)
    if np.any(objectness == 0):
        k, i = total - 1, 0
        while i <= k:
            if objectness[order[i]] == 0:
                order[i], order[k] = order[k], order[i]
                k -= 1
            else:
                i += 1
        total = k + 1

    # a class whose probs are all 0 is a no-op (its sort is stable, nothing to suppress), and a
    # class's pass changes only its own probs: visit the others only (most classes of an image)
    for k in np.flatnonzero(probs[order[:total]].any(axis=0)):
        # qsort by prob[k] descending; glibc's qsort is a stable merge sort
        active = order[:total]
        active = active[np.argsort(-probs[active, k], kind="stable")]
        order[:total] = active
        cand = active[probs[active, k] != 0]  # zeroing a zero is a no-op: skip them
        if len(cand) < 2:
            continue
        p = probs[cand, k]  # (m,) this class's probs in sorted order
        e = np.ascontiguousarray(edges[:, cand])  # (7, m)
        kernels.nms_class(e, p, t, crit != "iou", exponent,
                          np.empty(p.shape[0], np.float32))  # O(m^2) pairs, compiled
        probs[cand, k] = p
    return order


# -- output ------------------------------------------------------------------------------------
def _class_names(names: Sequence[str] | None, classes: int) -> list[str]:
    if names is None:
        return [str(k) for k in range(classes)]
    if len(names) < classes:
        raise DarknetError(f"{len(names)} class names given for {classes} classes")
    return list(names)


def to_detections(
    boxes: np.ndarray,
    probs: np.ndarray,
    image_w: int,
    image_h: int,
    names: Sequence[str] | None,
    thresh: float,
) -> list[Detection]:
    """One Detection per (box, class) with prob > thresh, by box then class (network.c).

    Classes whose name starts with "dont_show" are skipped, as darknet does. box_id is the row
    of boxes; pass boxes[order], probs[order] (order from nms) to list them as darknet's -out
    JSON does.
    """
    probs = np.asarray(probs, _F)
    all_names = _class_names(names, probs.shape[1])
    show = np.array([not n.startswith("dont_show") for n in all_names], bool)
    keep = (probs > _F(thresh)) & show[None, :]
    rows, ks = np.nonzero(keep)  # row-major: by box, then class
    # as Python floats in one go (each float32 exactly): a Python loop reading the arrays
    # value by value took 0.27 s for a random-weight yolov4-tiny's 36,000 detections
    places = np.asarray(boxes)[rows].astype(np.float64).tolist()
    scores = probs[rows, ks].astype(np.float64).tolist()
    iw, ih = int(image_w), int(image_h)
    return [Detection(k, all_names[k], p, x, y, w, h, iw, ih, i)
            for i, k, (x, y, w, h), p in zip(rows.tolist(), ks.tolist(), places, scores)]


def c_round(v: float) -> float:
    """C round(): halves away from zero (Python's round() goes to even); keeps -0.0."""
    if not math.isfinite(v):
        return v
    a = abs(v)
    r = math.floor(a)
    if a - r >= 0.5:
        r += 1
    return math.copysign(float(r), v)


def format_darknet(
    detections: Sequence[Detection],
    names: Sequence[str] | None,
    thresh: float,
    ext_output: bool = False,
) -> list[str]:
    """The lines `darknet detector test` prints for one image (image.c draw_detections_v3).

    Per box (detections sharing box_id) the best class: the first class with the highest
    prob > thresh (get_actual_detections). Boxes sorted by left edge x - w/2 (stable); line
    "name: 81%", with ext_output the C-rounded unclipped pixel box appended; then the box's
    other classes above thresh, one line each, in class order.
    """
    t = _F(thresh)
    by_box: dict[int, list[Detection]] = {}
    for d in detections:
        if _F(d.confidence) > t:
            by_box.setdefault(d.box_id, []).append(d)
    selected = []
    for dets in by_box.values():
        dets = sorted(dets, key=lambda d: d.class_id)
        best = dets[0]
        for d in dets[1:]:
            if _F(d.confidence) > _F(best.confidence):  # strict: ties keep the first class
                best = d
        selected.append((best, dets))
    # compare_by_lefts: float left edges, ascending
    selected.sort(key=lambda s: float(_F(s[0].x) - _F(s[0].w) / _F(2)))

    def name(d: Detection) -> str:
        return names[d.class_id] if names is not None else d.name

    def pct(d: Detection) -> str:
        return "%.0f%%" % float(_F(d.confidence) * _F(100))  # prob*100 is a float product

    lines = []
    for best, dets in selected:
        line = f"{name(best)}: {pct(best)}"
        if ext_output:
            x, y, w, h = (_F(v) for v in (best.x, best.y, best.w, best.h))
            iw, ih = _F(best.image_w), _F(best.image_h)
            left = c_round(float((x - w / _F(2)) * iw))
            top = c_round(float((y - h / _F(2)) * ih))
            line += "\t(left_x: %4.0f   top_y: %4.0f   width: %4.0f   height: %4.0f)" % (
                left, top, c_round(float(w * iw)), c_round(float(h * ih)))  # fmt: skip
        lines.append(line)
        lines.extend(f"{name(d)}: {pct(d)}" for d in dets if d is not best)
    return lines


def to_darknet_json(frames: Sequence[tuple[int, str, Sequence[Detection]]]) -> list[dict]:
    """darknet's -out file: [{"frame_id", "filename", "objects": [...]}] (network.c).

    detection_to_json keeps objects with prob > 0.005 (its own hard-coded threshold).
    """
    out = []
    for frame_id, filename, dets in frames:
        objects = [d.to_darknet_json() for d in dets if _F(d.confidence) > _F(0.005)]
        out.append({"frame_id": frame_id, "filename": filename, "objects": objects})
    return out
