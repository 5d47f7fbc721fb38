"""Slow, obviously correct twins of pydarknet's optimized code, for the tests to compare against."""

# --- image / postprocess twins ---
# Slow, literal loop ports of darknet's C for pydarknet/image.py and pydarknet/postprocess.py
# (image.c resize_image/letterbox_image, yolo_layer.c, region_layer.c, box.c). One scalar at a
# time: np.float32 where C has float, Python float (a C double) where C promotes to double.
import math as _math

import numpy as _np

_f32 = _np.float32


def resize_image(im, w, h):
    """image.c resize_image, as a triple loop. im (C, H, W) float32 -> (C, h, w)."""
    n_c, ih, iw = im.shape
    if iw == w and ih == h:
        return im.copy()
    part = _np.zeros((n_c, ih, w), _f32)
    resized = _np.zeros((n_c, h, w), _f32)
    w_scale = _f32(iw - 1) / _f32(w - 1) if w > 1 else None  # unused when w == 1
    h_scale = _f32(ih - 1) / _f32(h - 1) if h > 1 else _f32(0)  # C divides by 0 here
    for k in range(n_c):
        for r in range(ih):
            for c in range(w):
                if c == w - 1 or iw == 1:
                    val = im[k, r, iw - 1]
                else:
                    sx = _f32(c) * w_scale
                    ix = int(sx)
                    dx = sx - _f32(ix)
                    val = (_f32(1) - dx) * im[k, r, ix] + dx * im[k, r, ix + 1]
                part[k, r, c] = val
    for k in range(n_c):
        for r in range(h):
            sy = _f32(r) * h_scale
            iy = int(sy)
            dy = sy - _f32(iy)
            for c in range(w):
                resized[k, r, c] = (_f32(1) - dy) * part[k, iy, c]
            if r == h - 1 or ih == 1:
                continue
            for c in range(w):
                resized[k, r, c] += dy * part[k, iy + 1, c]
    return resized


def letterbox_image(im, w, h):
    """image.c letterbox_image: fit, resize_image, embed on a 0.5 canvas."""
    n_c, ih, iw = im.shape
    if (_f32(w) / _f32(iw)) < (_f32(h) / _f32(ih)):
        new_w, new_h = w, (ih * w) // iw
    else:
        new_h, new_w = h, (iw * h) // ih
    resized = resize_image(im, new_w, new_h)
    boxed = _np.full((n_c, h, w), 0.5, _f32)
    dx, dy = (w - new_w) // 2, (h - new_h) // 2
    for k in range(n_c):
        for y in range(new_h):
            for x in range(new_w):
                if 0 <= dx + x < w and 0 <= dy + y < h:  # set_pixel ignores outside writes
                    boxed[k, dy + y, dx + x] = resized[k, y, x]
    return boxed


def _pp_logistic(x):
    """activations.h logistic_activate: 1.f/(1.f + expf(-x)); expf = exp in double, as float."""
    with _np.errstate(over="ignore"):
        e = _f32(_np.exp(-_np.float64(x)))
    return _f32(1) / (_f32(1) + e)


def _pp_exp_times(t, anchor, size):
    """C `exp(t) * anchor / size`: all double, stored to float."""
    with _np.errstate(over="ignore"):
        return _f32(_np.exp(_np.float64(t)) * float(anchor) / float(size))


def _pp_softmax(out, base, n):
    """blas.c softmax(out + base, n, temp=1, ...) in place: exp in double, float sum in order."""
    largest = -_np.finfo(_f32).max
    for j in range(n):
        if out[base + j] > largest:
            largest = out[base + j]
    total = _f32(0)
    for j in range(n):
        e = _f32(_np.exp(_np.float64(out[base + j] - largest)))
        total += e
        out[base + j] = e
    for j in range(n):
        out[base + j] = out[base + j] / total


def _pp_letter_size(w, h, netw, neth, letter):
    """The image's size inside the network input: correct_yolo_boxes' new_w, new_h."""
    if not letter:
        return netw, neth
    if (_f32(netw) / _f32(w)) < (_f32(neth) / _f32(h)):
        return netw, (h * netw) // w
    return (w * neth) // h, neth


def decode_yolo(raw, anchors, mask, classes, scale_x_y, new_coords, net_w, net_h, thresh):
    """forward_yolo_layer + get_yolo_detections (+ get_yolo_box) over a flat l.output."""
    n = len(mask)
    _, lh, lw = raw.shape
    biases = [_f32(v) for v in _np.asarray(anchors, _f32).reshape(-1)]
    out = _np.array(raw, _f32).reshape(-1)

    def entry(a, e, loc):  # yolo_layer.c entry_index for batch 0
        return a * lw * lh * (4 + classes + 1) + e * lw * lh + loc

    alpha = _f32(scale_x_y)
    beta = _f32(-0.5 * float(alpha - 1))
    for a in range(n):
        for e in range(5 + classes):
            for loc in range(lw * lh):
                v = out[entry(a, e, loc)]
                if not new_coords and e != 2 and e != 3:
                    v = _pp_logistic(v)
                if e < 2:
                    v = v * alpha + beta
                out[entry(a, e, loc)] = v
    t = _f32(thresh)
    boxes, objs, probs = [], [], []
    for i in range(lw * lh):
        row, col = i // lw, i % lw
        for a in range(n):
            obj = out[entry(a, 4, i)]
            if not obj > t:
                continue
            tx, ty, tw, th = (out[entry(a, e, i)] for e in range(4))
            bw, bh = biases[2 * mask[a]], biases[2 * mask[a] + 1]
            x = (_f32(col) + tx) / _f32(lw)
            y = (_f32(row) + ty) / _f32(lh)
            if new_coords:
                w = tw * tw * _f32(4) * bw / _f32(net_w)
                h = th * th * _f32(4) * bh / _f32(net_h)
            else:
                w = _pp_exp_times(tw, bw, net_w)
                h = _pp_exp_times(th, bh, net_h)
            boxes.append([x, y, w, h])
            objs.append(obj)
            row_p = []
            for j in range(classes):
                p = obj * out[entry(a, 5 + j, i)]
                row_p.append(p if p > t else _f32(0))
            probs.append(row_p)
    return (
        _np.array(boxes, _f32).reshape(-1, 4),
        _np.array(objs, _f32),
        _np.array(probs, _f32).reshape(-1, classes),
    )


def decode_gaussian_yolo(raw, anchors, mask, classes, scale_x_y, yolo_point, net_w, net_h,
                         thresh):  # fmt: skip
    """forward_gaussian_yolo_layer + get_gaussian_yolo_detections (+ get_gaussian_yolo_box)
    over a flat l.output."""
    n = len(mask)
    _, lh, lw = raw.shape
    biases = [_f32(v) for v in _np.asarray(anchors, _f32).reshape(-1)]
    out = _np.array(raw, _f32).reshape(-1)
    stride = lw * lh

    def entry(a, e, loc):  # entry_gaussian_index for batch 0
        return a * lw * lh * (8 + classes + 1) + e * lw * lh + loc

    def logistic_span(start, count):  # activate_array(l.output + start, count, LOGISTIC)
        for k in range(start, start + count):
            out[k] = _pp_logistic(out[k])

    alpha = _f32(scale_x_y)
    beta = _f32(-0.5 * float(alpha - 1))
    for a in range(n):
        for first in (0, 2):  # x (and y): mu and sigma squashed, mu scaled
            index = entry(a, first, 0)
            logistic_span(index, 2 * stride)
            for k in range(index, index + stride):
                out[k] = out[k] * alpha + beta
        logistic_span(entry(a, 5, 0), stride)
        logistic_span(entry(a, 7, 0), stride)
        logistic_span(entry(a, 8, 0), (1 + classes) * stride)
    t = _f32(thresh)
    boxes, objs, probs = [], [], []
    for i in range(lw * lh):
        row, col = i // lw, i % lw
        for a in range(n):
            obj = out[entry(a, 8, i)]
            if not obj > t:  # `objectness <= thresh` skips, and so does NaN
                continue
            b = entry(a, 0, i)
            bw = _pp_exp_times(out[b + 4 * stride], biases[2 * mask[a]], net_w)
            bh = _pp_exp_times(out[b + 6 * stride], biases[2 * mask[a] + 1], net_h)
            x = (_f32(col) + out[b]) / _f32(lw)
            y = (_f32(row) + out[b + 2 * stride]) / _f32(lh)
            if yolo_point == "left_top":
                x = (_f32(col) + out[b]) / _f32(lw) + bw / _f32(2)
                y = (_f32(row) + out[b + 2 * stride]) / _f32(lh) + bh / _f32(2)
            elif yolo_point == "right_bottom":
                x = (_f32(col) + out[b]) / _f32(lw) - bw / _f32(2)
                y = (_f32(row) + out[b + 2 * stride]) / _f32(lh) - bh / _f32(2)
            boxes.append([x, y, bw, bh])
            objs.append(obj)
            uc = [out[entry(a, e, i)] for e in (1, 3, 5, 7)]
            row_p = []
            for j in range(classes):
                uc_aver = _f32(float(uc[0] + uc[1] + uc[2] + uc[3]) / 4.0)
                p = _f32(float(obj * out[entry(a, 9 + j, i)]) * (1.0 - float(uc_aver)))
                row_p.append(p if p > t else _f32(0))
            probs.append(row_p)
    return (
        _np.array(boxes, _f32).reshape(-1, 4),
        _np.array(objs, _f32),
        _np.array(probs, _f32).reshape(-1, classes),
    )


def decode_detection(raw, classes, num, side, softmax, sqrt, thresh):
    """forward_detection_layer (softmax) + get_detection_detections(l, 1, 1, thresh, dets)."""
    out = _np.array(raw, _f32).reshape(-1)
    locations = side * side
    if softmax:
        for i in range(locations):  # blas.c softmax(output + i*classes, classes, 1, ...)
            _pp_softmax(out, i * classes, classes)
    t = _f32(thresh)
    boxes, objs, probs = [], [], []
    for i in range(locations):
        row, col = i // side, i % side
        for n in range(num):
            p_index = locations * classes + i * num + n
            scale = out[p_index]
            b = locations * (classes + num) + (i * num + n) * 4
            power = 2 if sqrt else 1
            boxes.append([
                (out[b + 0] + _f32(col)) / _f32(side) * _f32(1),
                (out[b + 1] + _f32(row)) / _f32(side) * _f32(1),
                _f32(float(out[b + 2]) ** power * 1.0),
                _f32(float(out[b + 3]) ** power * 1.0),
            ])
            objs.append(scale)
            row_p = []
            for j in range(classes):
                prob = scale * out[i * classes + j]
                row_p.append(prob if prob > t else _f32(0))
            probs.append(row_p)
    return (
        _np.array(boxes, _f32).reshape(-1, 4),
        _np.array(objs, _f32),
        _np.array(probs, _f32).reshape(-1, classes),
    )


def correct_gaussian_yolo_boxes(boxes, w, h, netw, neth, letter):
    """gaussian_yolo_layer.c correct_gaussian_yolo_boxes with relative=1, one box at a time."""
    new_w, new_h = _pp_letter_size(w, h, netw, neth, letter)
    out = _np.array(boxes, _f32, copy=True)
    for b in out:
        b[0] = _f32((float(b[0]) - (netw - new_w) / 2.0 / netw) / float(_f32(new_w) / _f32(netw)))
        b[1] = _f32((float(b[1]) - (neth - new_h) / 2.0 / neth) / float(_f32(new_h) / _f32(neth)))
        b[2] = b[2] * (_f32(netw) / _f32(new_w))
        b[3] = b[3] * (_f32(neth) / _f32(new_h))
    return out


def decode_region(raw, anchors, classes, coords, num, softmax, net_w, net_h, thresh,
                  hier_thresh=0.5):  # fmt: skip
    """AlexeyAB forward_region_layer (flatten, logistic, softmax) + get_region_boxes."""
    size = coords + 1 + classes
    _, lh, lw = raw.shape
    layers = size * num
    biases = [_f32(v) for v in _np.asarray(anchors, _f32).reshape(-1)]
    src = _np.array(raw, _f32).reshape(-1)
    out = _np.zeros(len(src), _f32)
    for ch in range(layers):  # blas.c flatten(..., forward=1)
        for i in range(lw * lh):
            out[i * layers + ch] = src[ch * lw * lh + i]
    for i in range(lh * lw * num):
        out[size * i + 4] = _pp_logistic(out[size * i + 4])
    if softmax:
        for i in range(lh * lw * num):
            _pp_softmax(out, size * i + 5, classes)
    t = _f32(thresh)
    boxes = _np.zeros((lw * lh * num, 4), _f32)
    probs = _np.zeros((lw * lh * num, classes), _f32)
    for i in range(lw * lh):
        row, col = i // lw, i % lw
        for n in range(num):
            index = i * num + n
            scale = out[index * size + 4]
            b = index * size
            boxes[index] = [
                (_f32(col) + _pp_logistic(out[b + 0])) / _f32(lw),
                (_f32(row) + _pp_logistic(out[b + 1])) / _f32(lh),
                _pp_exp_times(out[b + 2], biases[2 * n], lw),
                _pp_exp_times(out[b + 3], biases[2 * n + 1], lh),
            ]
            for j in range(classes):
                p = scale * out[b + 5 + j]
                probs[index, j] = p if p > t else _f32(0)
    return boxes, _np.ones(lw * lh * num, _f32), probs


def correct_yolo_boxes(boxes, w, h, netw, neth, letter):
    """yolo_layer.c correct_yolo_boxes with relative=1, one box at a time."""
    new_w, new_h = _pp_letter_size(w, h, netw, neth, letter)
    deltaw, deltah = _f32(netw - new_w), _f32(neth - new_h)
    ratiow, ratioh = _f32(new_w) / _f32(netw), _f32(new_h) / _f32(neth)
    out = _np.array(boxes, _f32, copy=True)
    for b in out:
        b[0] = _f32((float(b[0]) - float(deltaw) / 2.0 / netw) / float(ratiow))
        b[1] = _f32((float(b[1]) - float(deltah) / 2.0 / neth) / float(ratioh))
        b[2] = b[2] * (_f32(1) / ratiow)
        b[3] = b[3] * (_f32(1) / ratioh)
    return out


def _pp_overlap(x1, w1, x2, w2):
    l1 = x1 - w1 / _f32(2)
    l2 = x2 - w2 / _f32(2)
    left = l1 if l1 > l2 else l2
    r1 = x1 + w1 / _f32(2)
    r2 = x2 + w2 / _f32(2)
    right = r1 if r1 < r2 else r2
    return right - left


def box_iou(a, b):
    """box.c box_iou (with box_intersection, box_union)."""
    w = _pp_overlap(a[0], a[2], b[0], b[2])
    h = _pp_overlap(a[1], a[3], b[1], b[3])
    inter = _f32(0) if (w < 0 or h < 0) else w * h
    union = a[2] * a[3] + b[2] * b[3] - inter
    if inter == 0 or union == 0:
        return _f32(0)
    return inter / union


def _pp_diou(a, b, exponent):
    top = min(a[1] - a[3] / _f32(2), b[1] - b[3] / _f32(2))  # box_c
    bot = max(a[1] + a[3] / _f32(2), b[1] + b[3] / _f32(2))
    left = min(a[0] - a[2] / _f32(2), b[0] - b[2] / _f32(2))
    right = max(a[0] + a[2] / _f32(2), b[0] + b[2] / _f32(2))
    w = right - left
    h = bot - top
    c = w * w + h * h
    iou = box_iou(a, b)
    if c == 0:
        return iou
    d = (a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1])
    u = _f32(_math.pow(float(d / c), exponent))
    return iou - u


def box_diou(a, b):
    """box.c box_diou: exponent hard-coded 0.6 (a double literal)."""
    return _pp_diou(a, b, 0.6)


def box_diounms(a, b, beta1):
    """box.c box_diounms: exponent beta1 (a float parameter)."""
    return _pp_diou(a, b, float(_f32(beta1)))


class _PpDet:
    """The fields of darknet's `detection` that NMS reads and writes."""

    def __init__(self, index, bbox, objectness, prob):
        self.index, self.bbox, self.objectness, self.prob = index, bbox, objectness, prob


def _pp_nms_sort(boxes, objectness, probs, thresh, suppress):
    dets = [_PpDet(i, [_f32(v) for v in boxes[i]], objectness[i], [_f32(v) for v in probs[i]])
            for i in range(len(boxes))]  # fmt: skip
    total = len(dets)
    k = total - 1
    i = 0
    while i <= k:  # for (i = 0; i <= k; ++i) { if (objectness == 0) { swap; --k; --i; } }
        if dets[i].objectness == 0:
            dets[i], dets[k] = dets[k], dets[i]
            k -= 1
            i -= 1
        i += 1
    total = k + 1
    classes = probs.shape[1]
    for k in range(classes):
        # qsort(nms_comparator): prob[k] descending; glibc's merge sort is stable, like sorted()
        dets[:total] = sorted(dets[:total], key=lambda d: -d.prob[k])
        for i in range(total):
            if dets[i].prob[k] == 0:
                continue
            a = dets[i].bbox
            for j in range(i + 1, total):
                if suppress(a, dets[j].bbox):
                    dets[j].prob[k] = _f32(0)
    out = _np.array(probs, _f32, copy=True)
    for d in dets:
        out[d.index] = d.prob
    return out, [d.index for d in dets]


def do_nms_sort(boxes, objectness, probs, thresh):
    """box.c do_nms_sort -> (new probs, final order of the dets array)."""
    t = _f32(thresh)
    return _pp_nms_sort(boxes, objectness, probs, t, lambda a, b: box_iou(a, b) > t)


def diounms_sort(boxes, objectness, probs, thresh, nms_kind, beta1):
    """box.c diounms_sort, with its if / else-if chain over nms_kind."""
    t = _f32(thresh)

    def suppress(a, b):
        if nms_kind == "cornersnms" and box_iou(a, b) > t:
            return True
        if nms_kind == "greedynms" and box_diou(a, b) > t:
            return True
        return nms_kind == "diounms" and box_diounms(a, b, beta1) > t

    return _pp_nms_sort(boxes, objectness, probs, t, suppress)


# --- zoo layer twins ---
# Literal loop ports of darknet's C for the kernels and layers of pydarknet/layers_more.py
# (activations.c, avgpool_layer.c, maxpool_layer.c, blas.c, reorg_layer.c, reorg_old_layer.c,
# convolutional_layer.c antialiasing, shortcut_layer.c). Flat float32 arrays, C index arithmetic.
def zoo_normalize_channels(x, mode):
    """activations.c activate_array_normalize_channels(_softmax) on a (c, h, w) map."""
    c = x.shape[0]
    flat = _np.array(x, _f32).reshape(c, -1)
    out = _np.zeros_like(flat)
    for i in range(flat.shape[1]):
        s = _f32(0.0001)
        if mode == 0:
            for k in range(c):
                if flat[k, i] > 0:
                    s = _f32(s + flat[k, i])
            for k in range(c):
                out[k, i] = flat[k, i] / s if flat[k, i] > 0 else _f32(0)
            continue
        mx = _f32(0)
        if mode == 2:
            mx = -_np.finfo(_f32).max
            for k in range(c):
                if flat[k, i] > mx or k == 0:
                    mx = flat[k, i]
        for k in range(c):
            s = _f32(s + _f32(_np.exp(_f32(flat[k, i] - mx))))
        for k in range(c):
            out[k, i] = _f32(_np.exp(_f32(flat[k, i] - mx))) / s
    return out.reshape(x.shape)


def zoo_conv2d(x, weights, stride_y, stride_x, pad, dilation=1):
    """A direct convolution of x (c, h, w) with weights (n, c, k, k): im2col_cpu_ext + gemm,
    out size (h + 2*pad - (dil*(k-1)+1))/stride + 1, in double for a reference value."""
    c, h, w = x.shape
    n, _, k, _ = weights.shape
    span = dilation * (k - 1) + 1
    oh = (h + 2 * pad - span) // stride_y + 1
    ow = (w + 2 * pad - span) // stride_x + 1
    out = _np.zeros((n, oh, ow))
    xp = _np.zeros((c, h + 2 * pad, w + 2 * pad))
    xp[:, pad : pad + h, pad : pad + w] = x
    for f in range(n):
        for oy in range(oh):
            for ox in range(ow):
                acc = 0.0
                for ch in range(c):
                    for ky in range(k):
                        for kx in range(k):
                            iy, ix = oy * stride_y + ky * dilation, ox * stride_x + kx * dilation
                            acc += float(weights[f, ch, ky, kx]) * float(xp[ch, iy, ix])
                out[f, oy, ox] = acc
    return out.astype(_f32)


def zoo_blur(x, size, stride_y, stride_x, pad):
    """The antialiasing input_layer: a depthwise conv with darknet's fixed weights."""
    if size == 2:
        k = _np.full((2, 2), 0.25, _f32)
    else:
        k = _np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], _f32) / _f32(16)
    out = [zoo_conv2d(x[ch : ch + 1], k[None, None], stride_y, stride_x, pad)[0]
           for ch in range(x.shape[0])]  # fmt: skip
    return _np.stack(out)


def zoo_avgpool(x):
    """avgpool_layer.c forward_avgpool_layer: (c, h, w) -> (c,)."""
    c = x.shape[0]
    flat = _np.array(x, _f32).reshape(c, -1)
    out = _np.zeros(c, _f32)
    for k in range(c):
        acc = _f32(0)
        for v in flat[k]:
            acc = _f32(acc + v)
        out[k] = acc / _f32(flat.shape[1])
    return out


def zoo_local_avgpool(x, size, stride_y, stride_x, pad, out_h, out_w):
    """maxpool_layer.c forward_local_avgpool_layer."""
    c, h, w = x.shape
    out = _np.zeros((c, out_h, out_w), _f32)
    for k in range(c):
        for i in range(out_h):
            for j in range(out_w):
                acc, count = _f32(0), 0
                for n in range(size):
                    for m in range(size):
                        cur_h = -(pad // 2) + i * stride_y + n
                        cur_w = -(pad // 2) + j * stride_x + m
                        if 0 <= cur_h < h and 0 <= cur_w < w:
                            acc = _f32(acc + x[k, cur_h, cur_w])
                            count += 1
                out[k, i, j] = acc / _f32(count)
    return out


def zoo_maxpool_depth(x, out_channels):
    """maxpool_layer.c forward_maxpool_layer with maxpool_depth=1."""
    c, h, w = x.shape
    out = _np.zeros((out_channels, h, w), _f32)
    for i in range(h):
        for j in range(w):
            for g in range(out_channels):
                best = -_np.finfo(_f32).max
                for k in range(g, c, out_channels):
                    if x[k, i, j] > best:
                        best = x[k, i, j]
                out[g, i, j] = best
    return out


def zoo_softmax(x, groups, temp):
    """blas.c softmax_cpu over `groups` contiguous parts of the flat input."""
    flat = _np.array(x, _f32).reshape(-1)
    n = flat.size // groups
    out = _np.zeros_like(flat)
    t = _f32(temp)
    for g in range(groups):
        part = flat[g * n : (g + 1) * n]
        largest = -_np.finfo(_f32).max
        for v in part:
            if v > largest:
                largest = v
        total = _f32(0)
        es = []
        for v in part:
            e = _f32(_math.exp(float(_f32(v / t) - _f32(largest / t))))
            total = _f32(total + e)
            es.append(e)
        out[g * n : (g + 1) * n] = [e / total for e in es]
    return out.reshape(x.shape)


def zoo_downsample(x, stride, scale, out_h, out_w):
    """blas.c upsample_cpu(..., forward=0) as forward_upsample_layer uses it for stride < 0."""
    c = x.shape[0]
    out = _np.zeros((c, out_h, out_w), _f32)
    sc = _f32(scale)
    for k in range(c):
        for j in range(out_h * stride):
            for i in range(out_w * stride):
                out[k, j // stride, i // stride] = _f32(out[k, j // stride, i // stride]
                                                        + sc * x[k, j, i])  # fmt: skip
    return out


def _zoo_reorg_cpu(x_flat, out_w, out_h, out_c, stride, forward):
    """blas.c reorg_cpu for batch 1, literally."""
    out = _np.zeros(x_flat.size, _f32)
    in_c = out_c // (stride * stride)
    for k in range(out_c):
        for j in range(out_h):
            for i in range(out_w):
                in_index = i + out_w * (j + out_h * k)
                c2 = k % in_c
                offset = k // in_c
                w2 = i * stride + offset % stride
                h2 = j * stride + offset // stride
                out_index = w2 + out_w * stride * (h2 + out_h * stride * c2)
                if forward:
                    out[out_index] = x_flat[in_index]
                else:
                    out[in_index] = x_flat[out_index]
    return out


def zoo_reorg_old(x, stride):
    """reorg_old_layer.c: reorg_cpu(input, w, h, c, stride, 0) with the *input* shape."""
    c, h, w = x.shape
    out = _zoo_reorg_cpu(_np.array(x, _f32).reshape(-1), w, h, c, stride, 0)
    return out.reshape(c * stride * stride, h // stride, w // stride)


def zoo_reorg3d(x, stride):
    """reorg_layer.c: reorg_cpu(input, out_w, out_h, out_c, stride, 0) with the output shape."""
    c, h, w = x.shape
    s = stride
    out = _zoo_reorg_cpu(_np.array(x, _f32).reshape(-1), w // s, h // s, c * s * s, s, 0)
    return out.reshape(c * s * s, h // s, w // s)


def zoo_shortcut(x, froms, weights=None, normalization="none"):
    """blas.c shortcut_multilayer_cpu for batch 1 after fuse_conv_batchnorm normalised the
    weights (lrelu = max(w, .001) for "relu"): flat index, each from-layer adds where it has
    values; weights (n+1,) per_feature or (n+1, c) per_channel."""
    c, h, w = x.shape
    n = len(froms)
    out = _np.array(x, _f32).reshape(-1).copy()
    if weights is not None:
        wts = _np.array(weights, _f32).reshape(n + 1, -1)
        for ch in range(wts.shape[1]):
            col = wts[:, ch]
            if normalization == "relu":
                col = _np.array([v if v > _f32(0.001) else _f32(0.001) for v in col], _f32)
                s = _f32(0.0001)
                for v in col:
                    s = _f32(s + v)
                wts[:, ch] = col / s
            elif normalization == "softmax":
                mx = max(col)
                e = _np.array([_np.exp(_f32(v - mx)) for v in col], _f32)
                s = _f32(0.0001)
                for v in e:
                    s = _f32(s + v)
                wts[:, ch] = e / s
        step = (c * h * w) // wts.shape[1]
    for i in range(c * h * w):
        if weights is not None:
            out[i] = out[i] * wts[0, i // step]
        for k, src in enumerate(froms):
            src = _np.array(src, _f32).reshape(-1)
            if i < src.size:
                add = src[i] if weights is None else src[i] * wts[k + 1, i // step]
                out[i] = out[i] + add
    return out.reshape(c, h, w)


def zoo_activate(x, name):
    """activations.h, one float at a time: *_activate(x) with C's float/double promotions."""
    out = _np.empty_like(_np.asarray(x, _f32))
    for i, v in enumerate(_np.asarray(x, _f32).reshape(-1)):
        v = _f32(v)
        with _np.errstate(over="ignore"):
            ex = _f32(_np.exp(-_np.float64(v)))  # expf(-x)
            if name == "logistic":
                r = _f32(1) / (_f32(1) + ex)
            elif name == "loggy":
                r = _f32(2) / (_f32(1) + ex) - _f32(1)
            elif name == "relu":
                r = v if v > 0 else _f32(0)
            elif name == "elu":
                r = v if v >= 0 else _f32(_np.exp(_np.float64(v))) - _f32(1)
            elif name == "selu":
                r = (_f32(1.0507) * v if v >= 0
                     else _f32(1.0507) * _f32(1.6732) * (_f32(_np.exp(_np.float64(v))) - _f32(1)))  # fmt: skip
            elif name == "gelu":
                r = _f32(0.5 * float(v) * (1 + _math.tanh(0.797885 * float(v)
                                                         + 0.035677 * float(v) ** 3)))  # fmt: skip
            elif name == "relie":
                r = v if v > 0 else _f32(0.01) * v
            elif name == "ramp":
                r = (v if v > 0 else _f32(0)) + _f32(0.1) * v
            elif name in ("leaky", "revleaky"):
                r = v if v > 0 else _f32(0.1) * v
            elif name == "tanh":
                r = _f32(2) / (_f32(1) + _f32(_np.exp(_np.float64(-2 * v)))) - _f32(1)
            elif name == "plse":
                r = (_f32(0.01) * (v + 4) if v < -4 else
                     _f32(0.01) * (v - 4) + 1 if v > 4 else _f32(0.125) * v + _f32(0.5))  # fmt: skip
            elif name == "stair":
                n = _math.floor(v)
                r = _f32(_math.floor(v / 2)) if n % 2 == 0 else (v - n) + _f32(_math.floor(v / 2))
            elif name == "hardtan":
                r = _f32(-1) if v < -1 else _f32(1) if v > 1 else v
            elif name == "lhtan":
                r = _f32(0.001) * v if v < 0 else _f32(0.001) * (v - 1) + 1 if v > 1 else v
            elif name == "linear":
                r = v
            elif name == "swish":  # activate_array_swish: x * logistic(x)
                r = v * (_f32(1) / (_f32(1) + ex))
            elif name == "mish":  # activate_array_mish: x * tanh_activate(softplus(x, 20))
                sp = v if v > 20 else _f32(_np.exp(_np.float64(v))) if v < -20 else _f32(
                    _math.log(float(_f32(_np.exp(_np.float64(v))) + _f32(1)))
                )  # fmt: skip
                r = v * _f32(_math.tanh(float(sp)))
            elif name == "hard_mish":
                r = v if v > 0 else v * v / _f32(2) + v if v > -2 else _f32(0)
            else:
                raise ValueError(name)
        out.reshape(-1)[i] = r
    return out


# --- kernel twins ---
# Loop versions of the kernels at the top of pydarknet/kernels.py and of the convolution they
# serve (im2col.c, maxpool_layer.c, blas.c upsample_cpu, activations.c), one element at a time.
_FLT_MAX = _f32(3.4028234663852886e38)


def im2col(x, size, stride_y, stride_x, pad, dilation, out_h, out_w):
    """(c, h, w) -> (c*size*size, out_h*out_w); zero where a tap falls outside the image."""
    c, h, w = x.shape
    out = _np.zeros((c * size * size, out_h * out_w), _f32)
    for ch in range(c):
        for ky in range(size):
            for kx in range(size):
                row = (ch * size + ky) * size + kx
                for oy in range(out_h):
                    for ox in range(out_w):
                        iy = oy * stride_y - pad + ky * dilation
                        ix = ox * stride_x - pad + kx * dilation
                        if 0 <= iy < h and 0 <= ix < w:
                            out[row, oy * out_w + ox] = x[ch, iy, ix]
    return out


def maxpool(x, size, stride_y, stride_x, pad):
    """forward_maxpool_layer: origin -pad/2, start at -FLT_MAX, keep `val > max`."""
    c, h, w = x.shape
    out_h, out_w = (h + pad - size) // stride_y + 1, (w + pad - size) // stride_x + 1
    off = -(pad // 2)
    out = _np.empty((c, out_h, out_w), _f32)
    for k in range(c):
        for i in range(out_h):
            for j in range(out_w):
                best = -_FLT_MAX
                for n in range(size):
                    for m in range(size):
                        y, xx = off + i * stride_y + n, off + j * stride_x + m
                        val = x[k, y, xx] if 0 <= y < h and 0 <= xx < w else -_FLT_MAX
                        best = val if val > best else best
                out[k, i, j] = best
    return out


def upsample(x, stride, scale):
    c, h, w = x.shape
    out = _np.empty((c, h * stride, w * stride), _f32)
    for k in range(c):
        for i in range(h * stride):
            for j in range(w * stride):
                out[k, i, j] = x[k, i // stride, j // stride] * _f32(scale)
    return out


def activation64(x, name):
    """The activations the kernels compute with their own exp, exactly (in float64)."""
    v = _np.asarray(x, _np.float64)
    with _np.errstate(over="ignore"):
        if name == "mish":  # softplus threshold 20, as activate_array_mish
            sp = _np.where(v > 20, v, _np.where(v < -20, _np.exp(v), _np.log1p(_np.exp(v))))
            return v * _np.tanh(sp)
        if name == "logistic":
            return 1 / (1 + _np.exp(-v))
        if name == "swish":
            return v / (1 + _np.exp(-v))
    raise ValueError(name)


def conv2d(x, weights, bias, stride, pad, dilation=1):
    """Direct convolution in float64: x (c, h, w), weights (n, c, size, size) -> (n, oh, ow)."""
    c, h, w = x.shape
    n, _, size, _ = weights.shape
    span = dilation * (size - 1) + 1
    oh, ow = (h + 2 * pad - span) // stride + 1, (w + 2 * pad - span) // stride + 1
    xp = _np.zeros((c, h + 2 * pad, w + 2 * pad))
    xp[:, pad : pad + h, pad : pad + w] = x
    out = _np.zeros((n, oh, ow))
    for ky in range(size):
        for kx in range(size):
            taps = xp[:, ky * dilation : ky * dilation + stride * (oh - 1) + 1 : stride,
                      kx * dilation : kx * dilation + stride * (ow - 1) + 1 : stride]  # fmt: skip
            out += _np.einsum("nc,chw->nhw", weights[:, :, ky, kx].astype(_np.float64), taps)
    return out + _np.asarray(bias, _np.float64)[:, None, None]


# -- Winograd twins: the transforms as the matrices of Lavin & Gray (2016), in float64 ----------
WINOGRAD = {
    2: (_np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float),
        _np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]),
        _np.array([[1, 1, 1, 0], [0, 1, -1, -1]], float)),
    4: (_np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], float),
        _np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
        _np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                  [0, 1, -1, 8, -8, 1]], float)),
    # stride 2, 2x2 outputs from 5x5 input tiles: the even phase's taps 0, 2 as F(2,2), the
    # odd phase's tap 1 by itself
    "s2": (_np.array([[1, 0, -1, 0, 0], [0, 0, 1, 0, 0], [0, 0, -1, 0, 1], [0, 1, 0, 0, 0],
                     [0, 0, 0, 1, 0]], float),
           _np.array([[1, 0, 0], [1, 0, 1], [0, 0, 1], [0, 1, 0], [0, 1, 0]], float),
           _np.array([[1, 1, 0, 1, 0], [0, 1, 1, 0, 1]], float)),
}  # tile m -> (B^T, G, A^T)  # fmt: skip


def _tile(m):
    """(output tile side, input tile side, input step between tiles) of WINOGRAD[m]."""
    return (2, 5, 4) if m == "s2" else (m, m + 2, m)


def winograd_input(x, pad, ty0, ty1, tw, m):
    """(c, a^2, tiles): B^T d B of every a x a input tile d, zero outside x."""
    bt = WINOGRAD[m][0]
    c, h, w = x.shape
    _, a, step = _tile(m)
    padded = _np.zeros((c, h + 2 * pad + a * (ty1 + tw) * 2, w + 2 * pad + 2 * a * tw + a))
    padded[:, pad : pad + h, pad : pad + w] = x
    out = _np.zeros((c, a * a, (ty1 - ty0) * tw))
    for ty in range(ty0, ty1):
        for tx in range(tw):
            d = padded[:, step * ty : step * ty + a, step * tx : step * tx + a]
            out[:, :, (ty - ty0) * tw + tx] = (bt @ d @ bt.T).reshape(c, a * a)
    return out


def winograd_weights(g, m):
    """(a^2, k): G g G^T of every 3x3 kernel of g (k, 9)."""
    gm = WINOGRAD[m][1]
    u = gm @ g.reshape(-1, 3, 3).astype(_np.float64) @ gm.T
    return u.reshape(len(g), -1).T


def winograd_output(mm, ty0, ty1, tw, m, out_h, out_w):
    """(f, rows, out_w): A^T M A of every tile of mm (f, a^2, tiles), cut at the map's edge;
    rows = the output rows of tile rows ty0..ty1."""
    at = WINOGRAD[m][1 + 1]
    f = mm.shape[0]
    m, a, _ = _tile(m)
    full = _np.zeros((f, m * (ty1 - ty0), m * tw))
    for k in range((ty1 - ty0) * tw):
        ty, tx = divmod(k, tw)
        y = at @ mm[:, :, k].reshape(f, a, a).astype(_np.float64) @ at.T
        full[:, m * ty : m * ty + m, m * tx : m * tx + m] = y
    rows = min(out_h, m * ty1) - m * ty0
    return full[:, :rows, :out_w]
