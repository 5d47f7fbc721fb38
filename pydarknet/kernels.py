"""Every Numba kernel of pydarknet, and nothing else.

Kernels take float32 C-contiguous arrays and write a preallocated `out`; callers validate
shapes once (layers.py), so there is no assert or raise in here. Twins: tests/reference.py.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import carray, cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# Activation codes (darknet activations.h ACTIVATION enum order is irrelevant; these are ours).
LINEAR, LEAKY, RELU, LOGISTIC, MISH, SWISH, RELU6, ELU, SELU, GELU, HARD_MISH = range(11)
RELIE, RAMP, TANH, PLSE, LHTAN, LOGGY, STAIR, HARDTAN = range(11, 19)

_F = np.float32


@njit(cache=True, inline="always")
def _activate(x, code):
    """One float32 through darknet's activate() (activations.h / activations.c)."""
    one = _F(1.0)
    if code == LINEAR:
        return x
    if code == LEAKY:
        return x if x > 0 else _F(0.1) * x
    if code == RELU:
        return x if x > 0 else _F(0.0)
    if code == LOGISTIC:
        return one / (one + np.exp(-x))
    if code == MISH:
        # x * tanh(softplus(x)), softplus threshold 20 (activate_array_mish)
        if x > _F(20.0):
            sp = x
        elif x < _F(-20.0):
            sp = np.exp(x)
        else:
            sp = np.log1p(np.exp(x))
        return x * np.tanh(sp)
    if code == SWISH:
        return x / (one + np.exp(-x))
    if code == RELU6:
        return min(max(x, _F(0.0)), _F(6.0))
    if code == ELU:
        return x if x >= 0 else np.exp(x) - one
    if code == SELU:
        return _F(1.0507) * x if x >= 0 else _F(1.0507) * _F(1.6732) * (np.exp(x) - one)
    if code == GELU:
        return _F(0.5) * x * (one + np.tanh(_F(0.797885) * x + _F(0.035677) * x * x * x))
    if code == HARD_MISH:
        # hard_mish_yashas: x>0 -> x; x>-2 -> x*x/2 + x; else 0
        if x > 0:
            return x
        if x > _F(-2.0):
            return x * x * _F(0.5) + x
        return _F(0.0)
    if code == RELIE:
        return x if x > 0 else _F(0.01) * x
    if code == RAMP:
        return (x if x > 0 else _F(0.0)) + _F(0.1) * x
    if code == TANH:
        return _F(2.0) / (one + np.exp(_F(-2.0) * x)) - one
    if code == PLSE:
        if x < _F(-4.0):
            return _F(0.01) * (x + _F(4.0))
        if x > _F(4.0):
            return _F(0.01) * (x - _F(4.0)) + one
        return _F(0.125) * x + _F(0.5)
    if code == LHTAN:
        if x < 0:
            return _F(0.001) * x
        if x > one:
            return _F(0.001) * (x - one) + one
        return x
    if code == LOGGY:
        return _F(2.0) / (one + np.exp(-x)) - one
    if code == STAIR:
        n = math.floor(x)
        if n % 2 == 0:
            return _F(math.floor(x / _F(2.0)))
        return (x - _F(n)) + _F(math.floor(x / _F(2.0)))
    if code == HARDTAN:
        return min(max(x, _F(-1.0)), one)
    return x


# Elementwise kernels work on row segments of at most _BLOCK floats: the scratch arrays below
# stay in L1 and every inner loop is a plain indexed loop over 0..m that LLVM vectorizes.
# error_model="numpy" lets float division vectorize (no ZeroDivisionError branch), as in C.
# _CONTRACT lets LLVM fuse a * b + c into one FMA (one rounding instead of two): exp's
# polynomial runs ~30% faster, within 1e-6 relative of the unfused result.
_BLOCK = 1024
_CONTRACT = {"contract"}
# Floats of the scratch bias_activate and activate take: _exp_split's p, then 2**k, whose int32
# exponent bits are the same memory seen as int32 (layers.act_scratch makes the pair).
ACT_SCRATCH = 2 * _BLOCK
# The kernels that run on a cold one-image detect (im2col, bias_activate, maxpool and
# maxpool_small, resize_bgr, nms_class, upsample) allocate nothing and reshape nothing: the
# caller passes every buffer. A kernel that calls np.empty, .reshape or .view links code of
# numba.np.arrayobj, whose import (~26 ms, a twentieth of a cold start) loading it from the
# cache would cost.


@njit(cache=True, error_model="numpy", fastmath=_CONTRACT)
def _exp_split(x, b, lo, hi, sign, p, bits):
    """x[i] += b, then p[i] * 2**k[i] = exp(clamp(sign*x[i], lo, hi)), k stored as float32
    exponent bits.

    Cephes expf (range reduction by ln 2 in two parts, degree-6 polynomial, < 2 ulp), written
    without calls so the loop vectorizes; libm's expf is a scalar call. Needs -87 <= lo, hi <= 88.
    """
    for i in range(x.shape[0]):
        v = x[i] + b
        x[i] = v
        t = max(min(sign * v, hi), lo)
        k = np.floor(t * _F(1.44269504088896341) + _F(0.5))
        r = t - k * _F(0.693359375) - k * _F(-2.12194440e-4)
        q = _F(1.9875691500e-4) * r + _F(1.3981999507e-3)
        q = q * r + _F(8.3334519073e-3)
        q = q * r + _F(4.1665795894e-2)
        q = q * r + _F(1.6666665459e-1)
        q = q * r + _F(5.0000001201e-1)
        p[i] = q * r * r + r + _F(1.0)
        bits[i] = (np.int32(k) + np.int32(127)) << np.int32(23)


@njit(cache=True, error_model="numpy", fastmath=_CONTRACT)
def _act_segment(seg, b, code, p, bits, scale):
    """seg = act(seg + b) in place, for one segment of at most _BLOCK floats (activations.c).

    The bias is added in the activation's own loop: one pass, and a store of a new value on
    every element. `seg[i] = v if v > 0 else 0.1 * v` alone stores only where v <= 0, which
    LLVM turns into masked stores (vmaskmovps), microcoded on AMD and 5x slower.
    """
    m = seg.shape[0]
    if code == LINEAR:
        if b != 0:
            for i in range(m):
                seg[i] = seg[i] + b
        return
    if code == LEAKY:
        for i in range(m):
            v = seg[i] + b
            seg[i] = v if v > _F(0.0) else _F(0.1) * v
    elif code == RELU:
        for i in range(m):
            v = seg[i] + b
            seg[i] = v if v > _F(0.0) else _F(0.0)
    elif code == MISH:
        # x * tanh(softplus(x)) = x * n / (n + 2) with n = e(e + 2), e = exp(x): one exp, no
        # cancellation; within 1e-6 of darknet's x > 20 -> x and x < -20 -> exp(x) branches
        # (tanh(x) rounds to 1 above 9; n/(n+2) -> e below -20). Below -87 expf underflows:
        # 0 there, as x * expf(x) is. Tested in test_kernels.py.
        _exp_split(seg, b, _F(-87.0), _F(20.0), _F(1.0), p, bits)
        for i in range(m):
            e = p[i] * scale[i]
            n = e * (e + _F(2.0))
            t = n / (n + _F(2.0))
            seg[i] = seg[i] * (t if seg[i] >= _F(-87.0) else _F(0.0))
    elif code == LOGISTIC or code == SWISH:
        _exp_split(seg, b, _F(-87.0), _F(88.0), _F(-1.0), p, bits)
        for i in range(m):
            s = _F(1.0) / (_F(1.0) + p[i] * scale[i])
            s = s if seg[i] >= _F(-88.0) else _F(0.0)  # 1/(1+expf(-x)) underflows there
            seg[i] = s if code == LOGISTIC else seg[i] * s
    else:
        for i in range(m):
            seg[i] = _activate(seg[i] + b, code)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def bias_activate(y, bias, code, lo, hi, scratch, bits):
    """y[c, lo:hi] = act(y[c, lo:hi] + bias[c]) in place; y is (n, out_h*out_w).

    convolutional_layer.c: add_bias then activate_array, over one column range of the GEMM
    output so the caller can run it while that range is still in cache. scratch: float32
    (ACT_SCRATCH,) whose second half is `bits` (int32) seen as float32.
    """
    p, scale = scratch[:_BLOCK], scratch[_BLOCK:]
    for c in range(y.shape[0]):
        row = y[c]
        for s in range(lo, hi, _BLOCK):
            _act_segment(row[s : min(s + _BLOCK, hi)], bias[c], code, p, bits, scale)


@njit(cache=True, nogil=True, error_model="numpy")
def activate(y, code, scratch, bits):
    """y = act(y) in place over a (rows, cols) array (blas.c activate_array); scratch and bits
    as for bias_activate."""
    p, scale = scratch[:_BLOCK], scratch[_BLOCK:]
    rows, cols = y.shape
    for r in range(rows):
        row = y[r]
        for s in range(0, cols, _BLOCK):
            _act_segment(row[s : min(s + _BLOCK, cols)], _F(0.0), code, p, bits, scale)


@njit(cache=True, nogil=True)
def im2col_rows(flat, h, w, size, stride_y, stride_x, pad, dilation, oy0, oy1, out_w, out):
    """Output rows oy0..oy1 of the im2col matrix: the image flat (c, h*w) -> out (c*size*size,
    (oy1-oy0)*out_w); zero outside the image (im2col.c im2col_cpu_ext).

    Each (channel, ky, kx) row is built from contiguous runs of an input row: zeros left of
    the image, a shifted (stride 1) or strided copy, zeros right of it.
    """
    c = flat.shape[0]
    for row in range(c * size * size):
        ch = row // (size * size)
        ky = (row // size) % size
        kx = row % size
        off = kx * dilation - pad  # input column of output column 0
        if stride_x == 1 and stride_y == 1 and out_w == w:
            _im2col_same_row(flat[ch], out[row], h, w, ky * dilation - pad, off, oy0, oy1)
            continue
        # output columns whose tap lands inside the image: 0 <= ox*stride_x + off < w
        lo = 0 if off >= 0 else min(out_w, (-off + stride_x - 1) // stride_x)
        hi = max(lo, min(out_w, (w - 1 - off) // stride_x + 1)) if w - 1 - off >= 0 else lo
        dst_row = out[row]
        for oy in range(oy0, oy1):
            dst = dst_row[(oy - oy0) * out_w : (oy - oy0 + 1) * out_w]
            iy = oy * stride_y - pad + ky * dilation
            if iy < 0 or iy >= h:
                for j in range(out_w):
                    dst[j] = 0.0
                continue
            for j in range(lo):
                dst[j] = 0.0
            src = flat[ch, iy * w + lo * stride_x + off :]
            mid = dst[lo:hi]
            if stride_x == 1:
                for j in range(hi - lo):
                    mid[j] = src[j]
            elif stride_x == 2:  # a constant stride vectorizes as shuffles, a variable one not
                for j in range(hi - lo):
                    mid[j] = src[2 * j]
            else:
                for j in range(hi - lo):
                    mid[j] = src[j * stride_x]
            for j in range(hi, out_w):
                dst[j] = 0.0


@njit(cache=True)
def _im2col_same_row(src, dst, h, w, dy, dx, oy0, oy1):
    """One im2col row of a stride-1 "same" convolution: dst[(oy-oy0)*w + j] = src[(oy+dy)*w + j+dx].

    Rows oy0..oy1 are one contiguous run of the flat input shifted by dy*w + dx, so copy the
    run, then zero the columns that wrapped into a neighbouring row and the rows outside.
    """
    a = min(max(oy0, -dy), oy1)  # output rows whose input row is inside the image
    b = max(min(oy1, h - dy), a)
    for j in range((a - oy0) * w):
        dst[j] = 0.0
    for j in range((b - oy0) * w, (oy1 - oy0) * w):
        dst[j] = 0.0
    if b == a:
        return
    lo = max(0, -dx)  # columns whose tap is inside the row
    hi = min(w, w - dx)
    n = (b - a - 1) * w + hi - lo
    if n > 0:
        d = dst[(a - oy0) * w + lo : (a - oy0) * w + lo + n]
        s = src[(a + dy) * w + lo + dx : (a + dy) * w + lo + dx + n]
        for j in range(n):
            d[j] = s[j]
    for oy in range(a, b):
        r = dst[(oy - oy0) * w : (oy - oy0 + 1) * w]
        for j in range(min(lo, w)):
            r[j] = 0.0
        for j in range(max(hi, 0), w):
            r[j] = 0.0


@njit(cache=True, nogil=True)
def im2col(flat, h, w, size, stride_y, stride_x, pad, dilation, out_h, out_w, out):
    """The image flat (c, h*w) -> out (c*size*size, out_h*out_w); zero outside the image
    (im2col.c)."""
    im2col_rows(flat, h, w, size, stride_y, stride_x, pad, dilation, 0, out_h, out_w, out)


@njit(cache=True, inline="always")
def _taps3(k, a, b, c, q):
    """The 3x3 taps k[0..8] on rows a, b, c from column q, summed in darknet's order."""
    return (k[0] * a[q] + k[1] * a[q + 1] + k[2] * a[q + 2]
            + k[3] * b[q] + k[4] * b[q + 1] + k[5] * b[q + 2]
            + k[6] * c[q] + k[7] * c[q + 1] + k[8] * c[q + 2])  # fmt: skip


@njit(cache=True, inline="always")
def _taps5(k, a, b, c, d, e, q):
    """The 5x5 taps k[0..24] on rows a..e from column q, summed in darknet's order."""
    return (k[0] * a[q] + k[1] * a[q + 1] + k[2] * a[q + 2] + k[3] * a[q + 3] + k[4] * a[q + 4]
            + k[5] * b[q] + k[6] * b[q + 1] + k[7] * b[q + 2] + k[8] * b[q + 3] + k[9] * b[q + 4]
            + k[10] * c[q] + k[11] * c[q + 1] + k[12] * c[q + 2] + k[13] * c[q + 3]
            + k[14] * c[q + 4] + k[15] * d[q] + k[16] * d[q + 1] + k[17] * d[q + 2]
            + k[18] * d[q + 3] + k[19] * d[q + 4] + k[20] * e[q] + k[21] * e[q + 1]
            + k[22] * e[q + 2] + k[23] * e[q + 3] + k[24] * e[q + 4])  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_CONTRACT)
def depthwise(x, w, mult, size, stride_y, stride_x, pad, dilation, f0, f1, out):
    """Output channels f0..f1 of a convolution with one input channel per group (depthwise;
    `mult` filters per group): out[f, oy, ox] = sum over taps (ky, kx), in that order, of
    w[f, ky*size + kx] * x[f // mult, oy*stride_y - pad + ky*dilation, ox*stride_x - pad +
    kx*dilation], zero outside the image (the order of darknet's gemm over one group's im2col).

    Each input channel is first copied into a zero-bordered plane, so no tap needs a bounds
    test. 3x3 kernels (stride 1 or 2) and 5x5 ones (stride 1) sum their taps in one expression
    per output, vectorized along the row: 1.5-2x the speed of adding one tap at a time over the
    row, as other shapes do (5x5 at stride 2 was slower in one expression).
    """
    _, h, wd = x.shape
    _, out_h, out_w = out.shape
    ph = (out_h - 1) * stride_y + (size - 1) * dilation + 1
    pw = (out_w - 1) * stride_x + (size - 1) * dilation + 1
    plane = np.zeros((ph, pw), np.float32)  # plane[i, j] = x[ch, i - pad, j - pad]
    y0, y1 = min(ph, pad), min(ph, max(pad, h + pad))  # the plane's part inside the image
    x0, x1 = min(pw, pad), min(pw, max(pad, wd + pad))
    filled = -1
    for f in range(f0, f1):
        ch = f // mult
        if ch != filled:
            for i in range(y0, y1):
                src, row = x[ch, i - pad, x0 - pad :], plane[i, x0:x1]
                for j in range(x1 - x0):
                    row[j] = src[j]
            filled = ch
        k = w[f]
        for oy in range(out_h):
            dst, top = out[f, oy], oy * stride_y
            if size == 3 and dilation == 1 and stride_x == 1:
                a, b, c = plane[top], plane[top + 1], plane[top + 2]
                for j in range(out_w):
                    dst[j] = _taps3(k, a, b, c, j)
            elif size == 3 and dilation == 1 and stride_x == 2:  # constant strides vectorize
                a, b, c = plane[top], plane[top + 1], plane[top + 2]
                for j in range(out_w):
                    dst[j] = _taps3(k, a, b, c, 2 * j)
            elif size == 5 and dilation == 1 and stride_x == 1:
                a, b, c = plane[top], plane[top + 1], plane[top + 2]
                d, e = plane[top + 3], plane[top + 4]
                for j in range(out_w):
                    dst[j] = _taps5(k, a, b, c, d, e, j)
            else:
                for j in range(out_w):
                    dst[j] = 0.0
                for ky in range(size):
                    r = plane[top + ky * dilation]
                    for kx in range(size):
                        wv, run = k[ky * size + kx], r[kx * dilation :]
                        if stride_x == 1:
                            for j in range(out_w):
                                dst[j] += wv * run[j]
                        elif stride_x == 2:  # a constant stride vectorizes as shuffles
                            for j in range(out_w):
                                dst[j] += wv * run[2 * j]
                        else:
                            for j in range(out_w):
                                dst[j] += wv * run[j * stride_x]


@njit(cache=True, nogil=True)
def maxpool(x, size, stride_y, stride_x, pad, out, rows):
    """x (c, h, w) -> out (c, out_h, out_w); window origin -pad//2, outside taps never win;
    rows: float32 scratch of w values.

    darknet forward_maxpool_layer starts from -FLT_MAX, skips taps outside the image and keeps
    `val > max` (so NaN never wins); `pad` is the total padding. The max is separable: for each
    output row, first over the window's input rows (whole rows, vectorized), then over each
    window's columns, so a 13x13 SPP window costs 26 compares per output instead of 169.
    """
    c, h, w = x.shape
    _, out_h, out_w = out.shape
    off = -(pad // 2)
    if size == 2 and stride_y == stride_x and stride_x <= 2 and off == 0:
        # the tiny models' pools: 4 taps, no separable pass needed
        if stride_x == 2:
            _maxpool_2x2(x, out)
        else:
            _maxpool_2x2_s1(x, out)
        return
    lowest = _F(-3.4028234663852886e38)
    # rows[j]: the max over the window's rows of input column j
    for k in range(c):
        for oy in range(out_h):
            for j in range(w):
                rows[j] = lowest
            for n in range(size):
                iy = off + oy * stride_y + n
                if 0 <= iy < h:
                    src = x[k, iy]
                    for j in range(w):
                        v = src[j]
                        rows[j] = v if v > rows[j] else rows[j]
            dst = out[k, oy]
            for j in range(out_w):
                dst[j] = lowest
            for m in range(size):
                o = off + m  # input column of output column 0
                lo = 0 if o >= 0 else min(out_w, (-o + stride_x - 1) // stride_x)
                hi = max(lo, min(out_w, (w - 1 - o) // stride_x + 1)) if w - 1 - o >= 0 else lo
                src = rows[lo * stride_x + o :]
                mid = dst[lo:hi]
                if stride_x == 1:
                    for j in range(hi - lo):
                        v = src[j]
                        mid[j] = v if v > mid[j] else mid[j]
                elif stride_x == 2:
                    for j in range(hi - lo):
                        v = src[2 * j]
                        mid[j] = v if v > mid[j] else mid[j]
                else:
                    for j in range(hi - lo):
                        v = src[j * stride_x]
                        mid[j] = v if v > mid[j] else mid[j]


# Stride-1 pools on small maps (SPP's 5x5 on 8x8 to 19x19): maxpool's separable passes run a
# dozen loops of one row each per output row. Here each pass is one loop per window row over
# the whole plane, and the column pass is the same row pass on the transposed plane.
POOL_PLANE = 2048  # the largest out_h * w for maxpool_small: its 3 scratch planes stay in L1


@njit(cache=True)
def _pool_rows(src, h, w, size, off, out_h, dst):
    """dst (out_h*w) = the max over each output row's window of rows of src (h*w): row oy
    takes rows oy+off .. oy+off+size-1 inside the image; from -FLT_MAX, `val > max`."""
    lowest = _F(-3.4028234663852886e38)
    for j in range(out_h * w):
        dst[j] = lowest
    for n in range(size):
        lo = min(out_h, max(0, -(off + n)))  # the output rows whose row n is inside
        hi = max(lo, min(out_h, h - off - n))
        taps = src[(lo + off + n) * w :]
        part = dst[lo * w : hi * w]
        for j in range((hi - lo) * w):
            v = taps[j]
            part[j] = v if v > part[j] else part[j]


@njit(cache=True, nogil=True)
def maxpool_small(flat, h, w, size, pad, out, scratch):
    """maxpool at stride 1 for maps of out_h * w <= POOL_PLANE: flat (c, h*w) -> out (c,
    out_h, out_w); scratch: float32, 2*out_h*w + out_w*out_h values. The same numbers as
    maxpool (a max over the same taps, NaN and -inf alike): 2.4-2.7x faster on 8x8 to 19x19
    maps; equal at 52x52, where the transposes stop fitting in L1."""
    c = flat.shape[0]
    _, out_h, out_w = out.shape
    off = -(pad // 2)
    rows = scratch[: out_h * w]  # the window's rows done: (out_h, w)
    turned = scratch[out_h * w : 2 * out_h * w]  # that, transposed: (w, out_h)
    done = scratch[2 * out_h * w : 2 * out_h * w + out_w * out_h]  # (out_w, out_h)
    for k in range(c):
        _pool_rows(flat[k], h, w, size, off, out_h, rows)
        for i in range(out_h):
            for j in range(w):
                turned[j * out_h + i] = rows[i * w + j]
        _pool_rows(turned, w, out_h, size, off, out_w, done)
        for i in range(out_h):
            dst = out[k, i]
            for j in range(out_w):
                dst[j] = done[j * out_h + i]


@njit(cache=True, nogil=True)
def _maxpool_2x2(x, out):
    """size=2 stride=2 with origin 0: the window of output (oy, ox) is input rows 2oy, 2oy+1 and
    columns 2ox, 2ox+1, the taps past the right and bottom edge left out. Taps in darknet's
    order from -FLT_MAX with `val > max`, so the result (NaN included) is the general loop's."""
    c, h, w = x.shape
    _, out_h, out_w = out.shape
    lowest = _F(-3.4028234663852886e38)
    full = min(out_w, w // 2)  # output columns whose two taps are inside
    for k in range(c):
        for oy in range(out_h):
            a, dst = x[k, 2 * oy], out[k, oy]
            if 2 * oy + 1 < h:
                b = x[k, 2 * oy + 1]
                for j in range(full):
                    m = lowest
                    v = a[2 * j]
                    m = v if v > m else m
                    v = a[2 * j + 1]
                    m = v if v > m else m
                    v = b[2 * j]
                    m = v if v > m else m
                    v = b[2 * j + 1]
                    dst[j] = v if v > m else m
                for j in range(full, out_w):  # odd width: only column 2j is inside
                    m = lowest
                    v = a[2 * j]
                    m = v if v > m else m
                    v = b[2 * j]
                    dst[j] = v if v > m else m
            else:  # odd height: the last output row has one input row
                for j in range(full):
                    m = lowest
                    v = a[2 * j]
                    m = v if v > m else m
                    v = a[2 * j + 1]
                    dst[j] = v if v > m else m
                for j in range(full, out_w):
                    v = a[2 * j]
                    dst[j] = v if v > lowest else lowest


# Rows of one channel per block of maxpool_2x2_even: its pairs' maxima (half as many floats)
# stay in L1 between the two passes.
POOL_PAIRS = 4096


def pool_pairs(h: int, w: int) -> int:
    """maxpool_2x2_even's scratch floats for an h x w map."""
    return min(h * w // 2, max(w, POOL_PAIRS))


@njit(cache=True, nogil=True)
def maxpool_2x2_even(flat, h, w, out, pairs):
    """size=2 stride=2 with origin 0 on a map of even height and width: flat (c, h*w) -> out
    (c, h/2 * w/2); pairs: float32 scratch of pool_pairs(h, w) values or more (w at least:
    one output row's).

    Two passes per block of rows: each input row's column pairs (a flat loop over whole rows:
    no pair straddles a row), then each output row from its two rows of pairs. Taps meet in
    darknet's order (row 2oy columns 2ox, 2ox+1, then row 2oy+1's), each pass from -FLT_MAX
    with `val > max`, so the result is _maxpool_2x2's, NaN, -inf and signed zeros included;
    on small maps the short rows' loops cost less (26x26x512 on one core: 0.06 against 0.17
    ms; 104x104x128: 0.16 against 0.21)."""
    c = flat.shape[0]
    ow = w // 2
    lowest = _F(-3.4028234663852886e38)
    rows = max(1, min(h // 2, pairs.shape[0] // w))  # output rows per block: rows * w pairs
    for k in range(c):
        src, dst = flat[k], out[k]
        for oy0 in range(0, h // 2, rows):
            oy1 = min(h // 2, oy0 + rows)
            taps = src[2 * oy0 * w : 2 * oy1 * w]
            for i in range((oy1 - oy0) * w):  # (2 rows per output row) * (w / 2 pairs per row)
                m = taps[2 * i]
                m = m if m > lowest else lowest
                v = taps[2 * i + 1]
                pairs[i] = v if v > m else m
            for oy in range(oy0, oy1):
                a = pairs[2 * (oy - oy0) * ow : (2 * (oy - oy0) + 1) * ow]
                b = pairs[(2 * (oy - oy0) + 1) * ow : 2 * (oy - oy0 + 1) * ow]
                d = dst[oy * ow : (oy + 1) * ow]
                for j in range(ow):
                    d[j] = b[j] if b[j] > a[j] else a[j]


@njit(cache=True, nogil=True)
def _maxpool_2x2_s1(x, out):
    """size=2 stride=1 with origin 0 (yolov3-tiny's and yolov2-tiny's 13x13 pool): the window
    of output (oy, ox) is input rows oy, oy+1 and columns ox, ox+1, the taps past the right
    and bottom edge left out; taps in darknet's order as in _maxpool_2x2. On 13x13x512 4x
    faster than the separable loop, whose rows are too short for its five passes, and 1.7x
    faster than maxpool_small."""
    c, h, w = x.shape
    _, out_h, out_w = out.shape
    lowest = _F(-3.4028234663852886e38)
    full = min(out_w, w - 1)  # output columns whose two taps are inside
    for k in range(c):
        for oy in range(out_h):
            a, dst = x[k, oy], out[k, oy]
            if oy + 1 < h:
                b = x[k, oy + 1]
                for j in range(full):
                    m = lowest
                    v = a[j]
                    m = v if v > m else m
                    v = a[j + 1]
                    m = v if v > m else m
                    v = b[j]
                    m = v if v > m else m
                    v = b[j + 1]
                    dst[j] = v if v > m else m
                for j in range(full, out_w):  # the last column: only column j is inside
                    m = lowest
                    v = a[j]
                    m = v if v > m else m
                    v = b[j]
                    dst[j] = v if v > m else m
            else:  # the last row: one input row
                for j in range(full):
                    m = lowest
                    v = a[j]
                    m = v if v > m else m
                    v = a[j + 1]
                    dst[j] = v if v > m else m
                for j in range(full, out_w):
                    v = a[j]
                    dst[j] = v if v > lowest else lowest


@njit(cache=True, nogil=True)
def upsample(x, stride, scale, out):
    """Nearest neighbour: out[k, y, x] = in[k, y//stride, x//stride] * scale (blas.c upsample_cpu)."""
    c, h, w = x.shape
    for k in range(c):
        for iy in range(h):
            src = x[k, iy]
            first = out[k, iy * stride]
            if stride == 2:  # a loop LLVM vectorizes (with stride unknown it stored value by value)
                for ix in range(w):
                    v = src[ix] * scale
                    first[2 * ix] = v
                    first[2 * ix + 1] = v
            else:
                for ix in range(w):
                    v = src[ix] * scale
                    for s in range(stride):
                        first[ix * stride + s] = v
            for s in range(1, stride):
                dst = out[k, iy * stride + s]
                for j in range(w * stride):
                    dst[j] = first[j]

# Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions (Lavin & Gray 2016): each 2x2 output tile
# comes from a 4x4 input tile d as A^T [U * (B^T d B)] A with U = G g G^T, so the GEMMs make 16
# products per tile where im2col makes 36. The transforms only add and subtract.
@njit(cache=True, nogil=True, inline="always")
def winograd_input(x, pad, ty0, ty1, tw, ch0, ch1, out):
    """Tile rows ty0..ty1 of channels ch0..ch1 of x (c, h, w) -> out (16, c, (ty1-ty0)*tw):
    B^T d B of each tile, element e of a tile in out[e] (one GEMM's input per e).

    Tile (ty, tx) reads input rows 2ty-pad..2ty-pad+3 and columns 2tx-pad..2tx-pad+3, zero
    outside the image, as the convolution's padding does.
    """
    h, w = x.shape[1], x.shape[2]
    rows = np.zeros((4, 2 * tw + 2), np.float32)  # four input rows, zero padded
    lo = min(pad, 2 * tw + 2)  # scratch column j holds input column j - pad
    hi = max(lo, min(2 * tw + 2, w + pad))
    for ch in range(ch0, ch1):
        for ty in range(ty0, ty1):
            for r in range(4):
                iy = 2 * ty - pad + r
                line = rows[r]
                for j in range(2 * tw + 2):
                    line[j] = 0.0
                if 0 <= iy < h:
                    src = x[ch, iy, lo - pad :]
                    seg = line[lo:hi]
                    for j in range(hi - lo):
                        seg[j] = src[j]
            r0, r1, r2, r3 = rows[0], rows[1], rows[2], rows[3]
            k0 = (ty - ty0) * tw
            for t in range(tw):
                j = 2 * t
                k = k0 + t
                # rows of B^T d are d0 - d2, d1 + d2, d2 - d1, d1 - d3; then the same on columns
                a0, a1 = r0[j] - r2[j], r0[j + 1] - r2[j + 1]
                a2, a3 = r0[j + 2] - r2[j + 2], r0[j + 3] - r2[j + 3]
                b0, b1 = r1[j] + r2[j], r1[j + 1] + r2[j + 1]
                b2, b3 = r1[j + 2] + r2[j + 2], r1[j + 3] + r2[j + 3]
                e0, e1 = r2[j] - r1[j], r2[j + 1] - r1[j + 1]
                e2, e3 = r2[j + 2] - r1[j + 2], r2[j + 3] - r1[j + 3]
                f0, f1 = r1[j] - r3[j], r1[j + 1] - r3[j + 1]
                f2, f3 = r1[j + 2] - r3[j + 2], r1[j + 3] - r3[j + 3]
                out[0, ch, k], out[1, ch, k] = a0 - a2, a1 + a2
                out[2, ch, k], out[3, ch, k] = a2 - a1, a1 - a3
                out[4, ch, k], out[5, ch, k] = b0 - b2, b1 + b2
                out[6, ch, k], out[7, ch, k] = b2 - b1, b1 - b3
                out[8, ch, k], out[9, ch, k] = e0 - e2, e1 + e2
                out[10, ch, k], out[11, ch, k] = e2 - e1, e1 - e3
                out[12, ch, k], out[13, ch, k] = f0 - f2, f1 + f2
                out[14, ch, k], out[15, ch, k] = f2 - f1, f1 - f3


@njit(cache=True, inline="always")
def _winograd_tile(m, q, k):
    """A^T m A of tile k of filter q (element e of the tile in m[e, q, k]): the 2x2 outputs
    (y00, y01, y10, y11)."""
    s00 = m[0, q, k] + m[4, q, k] + m[8, q, k]
    s01 = m[1, q, k] + m[5, q, k] + m[9, q, k]
    s02 = m[2, q, k] + m[6, q, k] + m[10, q, k]
    s03 = m[3, q, k] + m[7, q, k] + m[11, q, k]
    s10 = m[4, q, k] - m[8, q, k] - m[12, q, k]
    s11 = m[5, q, k] - m[9, q, k] - m[13, q, k]
    s12 = m[6, q, k] - m[10, q, k] - m[14, q, k]
    s13 = m[7, q, k] - m[11, q, k] - m[15, q, k]
    return s00 + s01 + s02, s01 - s02 - s03, s10 + s11 + s12, s11 - s12 - s13


@njit(cache=True, nogil=True, inline="always")
def winograd_output(m, ty0, ty1, tw, f0, f1, out):
    """Tiles of filters f0..f1 (m's filter axis starts at f0): m (16, f1-f0, (ty1-ty0)*tw) ->
    rows 2*ty0..2*ty1 of out (n, out_h, out_w); outputs past the map's edge are dropped."""
    _, out_h, out_w = out.shape
    whole = out_w // 2  # tiles whose two columns are inside
    for f in range(f0, f1):
        q = f - f0
        for ty in range(ty0, ty1):
            k0 = (ty - ty0) * tw
            top = out[f, 2 * ty]
            if 2 * ty + 1 < out_h:
                bottom = out[f, 2 * ty + 1]
                for t in range(whole):
                    y00, y01, y10, y11 = _winograd_tile(m, q, k0 + t)
                    top[2 * t], top[2 * t + 1] = y00, y01
                    bottom[2 * t], bottom[2 * t + 1] = y10, y11
                if whole < tw:
                    y00, y01, y10, y11 = _winograd_tile(m, q, k0 + whole)
                    top[2 * whole], bottom[2 * whole] = y00, y10
            else:
                for t in range(whole):
                    y00, y01, y10, y11 = _winograd_tile(m, q, k0 + t)
                    top[2 * t], top[2 * t + 1] = y00, y01
                if whole < tw:
                    y00, y01, y10, y11 = _winograd_tile(m, q, k0 + whole)
                    top[2 * whole] = y00


# The weight transforms U = G g G^T run once per layer, on every (filter, channel) kernel g, in
# float64, on blocks of _WBLOCK kernels: each loop writes one row of the block, over the kernels
# (one array written per loop: LLVM vectorizes it). One kernel for every G (its matrix an
# argument): one specialised per G cost ~2 s of a first run's compiling.
_WBLOCK = 256


@njit(cache=True, nogil=True, error_model="numpy")
def winograd_weights(g, gm, out):
    """out (side^2, k) float32 = G g G^T of every 3x3 kernel of g (k, 9) float32, G = gm (side,
    3) float64; element side*i + j at row i, column j of the tile."""
    side, k = gm.shape[0], g.shape[0]
    gt = np.empty((9, _WBLOCK))  # the block's kernels, entry e of kernel q at gt[e, q]
    t = np.empty((side, 3, _WBLOCK))  # G g: row i, column j
    for q0 in range(0, k, _WBLOCK):
        m = min(_WBLOCK, k - q0)
        for q in range(m):
            for e in range(9):
                gt[e, q] = np.float64(g[q0 + q, e])
        for i in range(side):
            a0, a1, a2 = gm[i, 0], gm[i, 1], gm[i, 2]
            for j in range(3):
                dst, r0, r1, r2 = t[i, j], gt[j], gt[3 + j], gt[6 + j]
                for q in range(m):
                    dst[q] = a0 * r0[q] + a1 * r1[q] + a2 * r2[q]
        for i in range(side):
            t0, t1, t2 = t[i, 0], t[i, 1], t[i, 2]
            for j in range(side):
                b0, b1, b2 = gm[j, 0], gm[j, 1], gm[j, 2]
                dst = out[side * i + j, q0 : q0 + m]
                for q in range(m):
                    dst[q] = np.float32(b0 * t0[q] + b1 * t1[q] + b2 * t2[q])


# --- lane-wise transforms ----------------------------------------------------------------------
# A Winograd transform is a few adds and multiplies by constants applied to runs of floats: six
# rows in, six rows out. Numba's loop over them writes several arrays, which LLVM vectorizes only
# behind run-time overlap checks, and on runs of 4-30 floats (a tile row) those checks and the
# scalar remainder cost more than the work (0.5 ns a value). _lanewise(fn) emits fn's own
# arithmetic, operation for operation, on 8-float vectors and then float by float for the last
# n % 8: the same roundings in every lane, so the same numbers as the scalar loop.
_JIT = not __import__("numba").config.DISABLE_JIT
_F32_IR = ir.FloatType()
_V8_IR = ir.VectorType(_F32_IR, 8)


class _Lanes:
    """An LLVM float32 value or 8-float vector with +, - and * (by another or a float32
    constant) that emit the operation: a transform's scalar function, called on these, emits
    its operations in its own order."""

    __array_ufunc__ = None  # np.float32 * _Lanes: numpy steps aside for __rmul__

    def __init__(self, builder, value, width: int):
        self.builder, self.value, self.width = builder, value, width

    def _of(self, other):
        if isinstance(other, _Lanes):
            return other.value
        value = float(np.float32(other))
        return ir.Constant(_V8_IR, [value] * 8) if self.width == 8 else ir.Constant(_F32_IR, value)

    def _made(self, op, a, b):
        return _Lanes(self.builder, op(a, b), self.width)

    def __add__(self, other):
        return self._made(self.builder.fadd, self.value, self._of(other))

    def __radd__(self, other):
        return self._made(self.builder.fadd, self._of(other), self.value)

    def __sub__(self, other):
        return self._made(self.builder.fsub, self.value, self._of(other))

    def __rsub__(self, other):
        return self._made(self.builder.fsub, self._of(other), self.value)

    def __mul__(self, other):
        return self._made(self.builder.fmul, self.value, self._of(other))

    def __rmul__(self, other):
        return self._made(self.builder.fmul, self._of(other), self.value)


def _runs(context, builder, array, array_type, offsets, count):
    """Pointers to array's floats at each of the first `count` offsets of the tuple `offsets`
    (an LLVM value): the runs a vector kernel reads or writes."""
    base = context.make_array(array_type)(context, builder, array).data
    return [builder.gep(base, [builder.extract_value(offsets, j)]) for j in range(count)]


def _runs_of_8(builder, n, block, short):
    """Emit block(i) for i = 0, 8, .. while i + 8 <= n, then once more at n - 8 if 8 does not
    divide n (lanes done twice give the same values where no run written overlaps one read);
    for n < 8, short()."""
    eight = ir.Constant(n.type, 8)
    with builder.if_else(builder.icmp_signed(">=", n, eight), likely=True) as (wide, narrow):
        with wide:
            blocks = builder.sdiv(n, eight)
            with cgutils.for_range(builder, blocks) as loop:
                block(builder.mul(loop.index, eight))
            with builder.if_then(builder.icmp_signed(">", n, builder.mul(blocks, eight))):
                block(builder.sub(n, eight))
        with narrow:
            short()


def _lanewise(fn):
    """op(n, src, ins, dst, outs) for a scalar function fn of len(ins) floats returning
    len(outs): dst[outs[r] + t] = fn(src[ins[0] + t], src[ins[1] + t], ...)[r] for t < n, with
    src and dst 1-d float32 arrays (contiguous) and ins and outs tuples of offsets into them;
    no run written may overlap one read. Offsets, not views: a view per run costs more than
    a tile row's work. The caller keeps every run inside its array (Numba's bounds checks do
    not see them). Without the JIT, a plain loop over fn."""
    if not _JIT:

        def op(n, src, ins, dst, outs):
            for t in range(n):
                for at, value in zip(outs, fn(*(src[i + t] for i in ins))):
                    dst[at + t] = value

        return op

    @intrinsic
    def op(typingctx, n, src, ins, dst, outs):
        sig = types.void(n, src, ins, dst, outs)

        def codegen(context, builder, signature, args):
            n, src, ins, dst, outs = args
            _, src_type, _, dst_type, _ = signature.args

            reads = _runs(context, builder, src, src_type, ins, len(signature.args[2]))
            writes = _runs(context, builder, dst, dst_type, outs, len(signature.args[4]))

            vptr, i32 = _V8_IR.as_pointer(), ir.IntType(32)
            spill = cgutils.alloca_once(builder, _V8_IR)

            def block(i, mask=None):
                at = [builder.bitcast(builder.gep(p, [i]), vptr) for p in reads]
                if mask is None:
                    values = [builder.load(p, align=4) for p in at]
                else:
                    load = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
                        _V8_IR, [vptr, i32, mask.type, _V8_IR]), "llvm.masked.load.v8f32.p0v8f32")
                    values = [builder.call(load, [p, ir.Constant(i32, 4), mask,
                                                  ir.Constant(_V8_IR, [0.0] * 8)]) for p in at]
                results = fn(*(_Lanes(builder, v, 8) for v in values))
                if mask is None:
                    for p, result in zip(writes, results):
                        builder.store(result.value, builder.bitcast(builder.gep(p, [i]), vptr),
                                      align=4)  # fmt: skip
                    return
                # masked stores are microcode on some CPUs (AMD's): the lanes go through the
                # stack, then the first n one by one
                for p, result in zip(writes, results):
                    builder.store(result.value, spill)
                    with cgutils.for_range(builder, n) as loop:
                        lane = builder.gep(builder.bitcast(spill, _F32_IR.as_pointer()),
                                           [loop.index])  # fmt: skip
                        builder.store(builder.load(lane), builder.gep(p, [loop.index]))

            def short():  # fewer than 8: a block whose lanes past n are neither read nor written
                lane = ir.Constant(ir.VectorType(n.type, 8), list(range(8)))
                limit = builder.shuffle_vector(
                    builder.insert_element(ir.Constant(ir.VectorType(n.type, 8), ir.Undefined),
                                           n, ir.Constant(i32, 0)),
                    ir.Constant(ir.VectorType(n.type, 8), ir.Undefined),
                    ir.Constant(ir.VectorType(i32, 8), [0] * 8))  # fmt: skip
                block(ir.Constant(n.type, 0), builder.icmp_signed("<", lane, limit))

            _runs_of_8(builder, n, block, short)
            return context.get_dummy_value()

        return sig, codegen

    return op


def _splitter(k: int):
    """op(n, src, at, dst, outs): dst[outs[p] + t] = src[at + k t + p] for t < n and p < k, a
    run of floats split by phase into k runs (contiguous 1-d arrays, no run written overlapping
    the one read). 8 values of each phase as a transpose of 128-bit lanes: register r holds the
    values of two runs of 4 (k 8: of tiles r and r + 4, or for k 2 and 4, 4 runs 8 k apart), so
    that in-lane shuffles (unpack, then shufps) leave each phase's 8 values in order. A
    generic shuffle of 8k floats made LLVM emit k cross-lane permutes and k - 1 blends a phase
    (split by 4 on one core: 0.161 -> 0.080 ns a value)."""
    if not _JIT:

        def op(n, src, at, dst, outs):
            for t in range(n):
                for p in range(k):
                    dst[outs[p] + t] = src[at + k * t + p]

        return op

    def lanes(values):  # a shuffle mask
        return ir.Constant(ir.VectorType(ir.IntType(32), len(values)), values)

    def halves(builder, first, lo, hi):
        """The 8-float vector of src's 4 floats at first + lo and 4 at first + hi."""
        v4 = ir.VectorType(_F32_IR, 4).as_pointer()
        a, b = (builder.load(builder.bitcast(builder.gep(first, [ir.Constant(ir.IntType(64), o)]),
                                             v4), align=4) for o in (lo, hi))  # fmt: skip
        return builder.shuffle_vector(a, b, lanes(list(range(8))))

    def transpose4(builder, r):
        """Four registers' 4x4 blocks transposed lane by lane: out[p] lane h = r[0..3][p] of
        that lane."""
        lo, hi = lanes([0, 8, 1, 9, 4, 12, 5, 13]), lanes([2, 10, 3, 11, 6, 14, 7, 15])
        u = [builder.shuffle_vector(r[a], r[a + 1], m) for a in (0, 2) for m in (lo, hi)]
        even, odd = lanes([0, 1, 8, 9, 4, 5, 12, 13]), lanes([2, 3, 10, 11, 6, 7, 14, 15])
        return [builder.shuffle_vector(u[q], u[q + 2], m) for q in (0, 1) for m in (even, odd)]

    def phases(builder, first):
        """The k vectors of 8 values of each phase from the 8k floats at first."""
        if k == 1:
            return [halves(builder, first, 0, 4)]
        if k == 2:  # [x0..3 | x8..11], [x4..7 | x12..15]
            a, b = halves(builder, first, 0, 8), halves(builder, first, 4, 12)
            return [builder.shuffle_vector(a, b, lanes([p, p + 2, p + 8, p + 10, p + 4, p + 6,
                                                        p + 12, p + 14])) for p in range(2)]
        if k == 4:  # register j: tiles j and j + 4 (4 phases each)
            return transpose4(builder, [halves(builder, first, 4 * j, 4 * j + 16)
                                        for j in range(4)])  # fmt: skip
        # k == 8: phases 0..3 and 4..7 of tiles j and j + 4
        return [v for h in (0, 4) for v in transpose4(
            builder, [halves(builder, first, 8 * j + h, 8 * j + h + 32) for j in range(4)])]

    @intrinsic
    def op(typingctx, n, src, at, dst, outs):
        sig = types.void(n, src, at, dst, outs)

        def codegen(context, builder, signature, args):
            n, src, at, dst, outs = args
            _, src_type, _, dst_type, _ = signature.args
            base = builder.gep(context.make_array(src_type)(context, builder, src).data, [at])
            writes = _runs(context, builder, dst, dst_type, outs, k)
            vptr = _V8_IR.as_pointer()

            def block(t):  # values k t .. k t + 8 k - 1 -> 8 of each phase
                first = builder.gep(base, [builder.mul(t, ir.Constant(t.type, k))])
                for p, phase in enumerate(phases(builder, first)):
                    builder.store(phase, builder.bitcast(builder.gep(writes[p], [t]), vptr),
                                  align=4)  # fmt: skip

            def short():  # value by value
                with cgutils.for_range(builder, n) as loop:
                    t = loop.index
                    for p in range(k):
                        i = builder.add(builder.mul(t, ir.Constant(t.type, k)),
                                        ir.Constant(t.type, p))  # fmt: skip
                        builder.store(builder.load(builder.gep(base, [i])),
                                      builder.gep(writes[p], [t]))  # fmt: skip

            _runs_of_8(builder, n, block, short)
            return context.get_dummy_value()

        return sig, codegen

    return op


_split1, _split2, _split4, _split8 = (_splitter(k) for k in (1, 2, 4, 8))


def _join4_python(n, src, ins, dst, at):
    for t in range(n):
        for p in range(4):
            dst[at + 4 * t + p] = src[ins[p] + t]


@intrinsic
def _join4_lanes(typingctx, n, src, ins, dst, at):
    """_join4 in vector code: 8 values of each of 4 runs to 32 in a row with 8 shuffles."""
    sig = types.void(n, src, ins, dst, at)

    def codegen(context, builder, signature, args):
        n, src, ins, dst, at = args
        _, src_type, _, dst_type, _ = signature.args
        reads = _runs(context, builder, src, src_type, ins, 4)
        base = builder.gep(context.make_array(dst_type)(context, builder, dst).data, [at])
        vptr, i32 = _V8_IR.as_pointer(), ir.IntType(32)

        def mask(values):
            return ir.Constant(ir.VectorType(i32, 8), values)

        def block(t):  # runs' values t .. t + 7 -> dst's 4t .. 4t + 31
            c = [builder.load(builder.bitcast(builder.gep(p, [t]), vptr), align=4) for p in reads]
            low, high = mask([0, 8, 1, 9, 2, 10, 3, 11]), mask([4, 12, 5, 13, 6, 14, 7, 15])
            pairs = [(builder.shuffle_vector(c[0], c[1], half), builder.shuffle_vector(c[2], c[3], half))
                     for half in (low, high)]  # fmt: skip
            first = builder.gep(base, [builder.mul(t, ir.Constant(t.type, 4))])
            for k, (ab, cd) in enumerate(pairs):
                for h, pick in enumerate((mask([0, 1, 8, 9, 2, 3, 10, 11]),
                                          mask([4, 5, 12, 13, 6, 7, 14, 15]))):  # fmt: skip
                    to = builder.gep(first, [ir.Constant(t.type, 16 * k + 8 * h)])
                    builder.store(builder.shuffle_vector(ab, cd, pick), builder.bitcast(to, vptr),
                                  align=4)  # fmt: skip

        def short():  # value by value
            with cgutils.for_range(builder, n) as loop:
                t = loop.index
                for p in range(4):
                    i = builder.add(builder.mul(t, ir.Constant(t.type, 4)),
                                    ir.Constant(t.type, p))  # fmt: skip
                    builder.store(builder.load(builder.gep(reads[p], [t])),
                                  builder.gep(base, [i]))  # fmt: skip

        _runs_of_8(builder, n, block, short)
        return context.get_dummy_value()

    return sig, codegen


# dst[at + 4t + p] = src[ins[p] + t] for t < n and p < 4: _split4 backwards.
_join4 = _join4_lanes if _JIT else _join4_python


# Winograd F(4x4, 3x3): 6x6 input tiles, 36 products per 4x4 output tile (im2col: 144), for
# larger maps. Interpolation points 0, +-1, +-2 and infinity (Lavin & Gray 2016, section 4.2).
@njit(cache=True, inline="always")
def _bt6(a0, a1, a2, a3, a4, a5):
    """B^T a for F(4,3): the rows 4 0 -5 0 1 0 / 0 -4 -4 1 1 0 / 0 4 -4 -1 1 0 /
    0 -2 -1 2 1 0 / 0 2 -1 -2 1 0 / 0 4 0 -5 0 1."""
    four, five = _F(4.0), _F(5.0)  # float32 constants: a float64 one widens the whole loop
    p, q = a4 - four * a2, a3 - four * a1
    r, s = a4 - a2, _F(2.0) * (a3 - a1)
    return four * a0 - five * a2 + a4, p + q, p - q, r + s, r - s, four * a1 - five * a3 + a5


@njit(cache=True, inline="always")
def _at6(m0, m1, m2, m3, m4, m5):
    """A^T m for F(4,3): the rows 1 1 1 1 1 0 / 0 1 -1 2 -2 0 / 0 1 1 4 4 0 / 0 1 -1 8 -8 1."""
    s, d = m1 + m2, m1 - m2
    s2, d2 = m3 + m4, m3 - m4
    return m0 + s + s2, d + _F(2.0) * d2, s + _F(4.0) * s2, d + _F(8.0) * d2 + m5


_bt6_rows = _lanewise(getattr(_bt6, "py_func", _bt6))
_at6_rows = _lanewise(getattr(_at6, "py_func", _at6))


@njit(cache=True, error_model="numpy")
def _phase_plane(x, ch, pad, y0, plane, line):
    """plane[r, p, t] = x[ch, y0 + r, k t + p - pad] for k = plane.shape[1] (1, 2, 4 or 8), zero
    outside the image: input rows split by column phase, so that tile transforms whose columns
    are k apart read whole vectors. line: scratch of >= k * plane.shape[2] floats, where each
    row is copied between zeros first, so that the split has no edge cases (scalar edges were
    half the plane's time on 26x26 maps)."""
    _, h, w = x.shape
    k, n = plane.shape[1], plane.shape[2]
    flat = plane.reshape(plane.shape[0], -1)
    all_x, all_plane = x.reshape(-1), plane.reshape(-1)
    lo, hi = min(pad, k * n), min(k * n, pad + w)  # the line's columns inside the image
    line[:lo] = 0.0
    line[max(lo, hi) : k * n] = 0.0
    for r in range(plane.shape[0]):
        iy = y0 + r
        if 0 <= iy < h:
            if hi > lo:
                _split1(hi - lo, all_x, (ch * h + iy) * w + lo - pad, line, (lo,))
            o = r * k * n
            if k == 1:
                _split1(n, line, 0, all_plane, (o,))
            elif k == 2:
                _split2(n, line, 0, all_plane, (o, o + n))
            elif k == 4:
                _split4(n, line, 0, all_plane, (o, o + n, o + 2 * n, o + 3 * n))
            else:
                _split8(n, line, 0, all_plane, (o, o + n, o + 2 * n, o + 3 * n, o + 4 * n,
                                                o + 5 * n, o + 6 * n, o + 7 * n))  # fmt: skip
        else:
            flat[r, :] = 0.0


@njit(cache=True, inline="always")
def _short_run(tw, rows, ld):
    """The run a transform's pass over one tile row of tw tiles computes: tw, or 8 where tw is
    shorter and the rows of its output (ld floats each, `rows` tile rows filled in order) have
    room for 8 past the last tile row's start. Under 8 floats a run takes masked loads and
    stores through the stack (13x13 maps, 4 tiles a row: 2.2 ns a value of F(4x4)'s input
    transform against 0.42 on 104x104); the tiles computed past tw are written over by the next
    tile row's, or fall in the row's room past its tiles (kernels.tile_row_floats)."""
    if tw >= 8 or (rows - 1) * tw + 8 > ld:
        return tw
    return 8


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def winograd4_input(x, pad, ty0, ty1, tw, ch0, ch1, out):
    """Tile rows ty0..ty1 of channels ch0..ch1 of x (c, h, w) -> out (36, c, (ty1-ty0)*tw):
    B^T d B of each 6x6 tile d, element 6i+j of a tile (row i, column j) in out[6i+j].

    Tile (ty, tx) reads input rows 4ty-pad..4ty-pad+5 and columns 4tx-pad..4tx-pad+5, zero
    outside the image, as the convolution's padding does (rows split by _phase_plane).
    """
    plane = np.empty((4 * (ty1 - ty0) + 2, 4, tw + 1), np.float32)
    # B^T applied down the columns of six plane rows (and a vector's room past them: _short_run)
    flat_cols = np.empty(24 * (tw + 1) + 8, np.float32)
    flat, dst = plane.reshape(-1), out.reshape(-1)
    line, part = 4 * (tw + 1), tw + 1  # floats in a plane row, in one phase of it
    c, t_all = out.shape[1], out.shape[2]
    run = _short_run(tw, ty1 - ty0, t_all)
    padded = np.empty(line, np.float32)  # _phase_plane's scratch
    for ch in range(ch0, ch1):
        _phase_plane(x, ch, pad, 4 * ty0 - pad, plane, padded)
        for ty in range(ty0, ty1):
            r = 4 * (ty - ty0) * line
            _bt6_rows(line, flat, (r, r + line, r + 2 * line, r + 3 * line, r + 4 * line,
                                   r + 5 * line),
                      flat_cols, (0, line, 2 * line, 3 * line, 4 * line, 5 * line))  # fmt: skip
            k0 = (ty - ty0) * tw
            for i in range(6):
                p = i * line  # phases 0..3 of column-pass row i; 4, 5: phases 0, 1 a tile on
                o = (6 * i * c + ch) * t_all + k0  # element 6i of this tile row, then 6i+1..
                e = c * t_all
                _bt6_rows(run, flat_cols, (p, p + part, p + 2 * part, p + 3 * part, p + 1,
                                           p + part + 1),
                          dst, (o, o + e, o + 2 * e, o + 3 * e, o + 4 * e, o + 5 * e))  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _output_4x4(m, ty0, ty1, tw, f0, f1, out, side):
    """Tiles of filters f0..f1 (m's filter axis starts at f0): m (side^2, f1-f0,
    (ty1-ty0)*tw) -> rows 4*ty0..4*ty1 of out (n, out_h, out_w) as A^T m A, A^T F(4x4, 3x3)'s
    (side 6) or F(4x4, 2x2)'s (side 5); outputs past the map's edge are dropped.

    A^T goes down the columns of all the step's tiles at once: long runs of m per pass instead
    of short ones per tile row, which the prefetchers follow (2x faster)."""
    _, out_h, out_w = out.shape
    t_all = (ty1 - ty0) * tw
    # A^T down the columns: [side a + j] (and a vector's room past them: _short_run)
    flat_half = np.empty(4 * side * t_all + 8, np.float32)
    run = max(tw, 8)  # the runs of rows: 8 floats apart at least, the tiles past tw not used
    rows = np.empty((4, 4, run), np.float32)  # [a, b, t]: output row a, column 4t + b
    flat_m, flat_rows = m.reshape(-1), rows.reshape(-1)
    flat_out = out.reshape(-1)
    fm, tm = m.shape[1], m.shape[2]
    step = fm * tm  # floats from one element to the next
    whole = out_w // 4  # tiles whose four columns are inside
    for f in range(f0, f1):
        q = f - f0
        for j in range(side):  # column j of every tile: elements side i + j
            e = (j * fm + q) * tm
            to = (j * t_all, (side + j) * t_all, (2 * side + j) * t_all, (3 * side + j) * t_all)
            if side == 6:
                _at6_rows(t_all, flat_m, (e, e + 6 * step, e + 12 * step, e + 18 * step,
                                          e + 24 * step, e + 30 * step), flat_half, to)  # fmt: skip
            else:
                _at5f_rows(t_all, flat_m, (e, e + 5 * step, e + 10 * step, e + 15 * step,
                                           e + 20 * step), flat_half, to)  # fmt: skip
        for ty in range(ty0, ty1):
            k0 = (ty - ty0) * tw
            for a in range(min(4, out_h - 4 * ty)):  # output row a of every tile
                h = side * a * t_all + k0
                to = (4 * a * run, (4 * a + 1) * run, (4 * a + 2) * run, (4 * a + 3) * run)
                if side == 6:
                    _at6_rows(run, flat_half, (h, h + t_all, h + 2 * t_all, h + 3 * t_all,
                                               h + 4 * t_all, h + 5 * t_all), flat_rows, to)  # fmt: skip
                else:
                    _at5f_rows(run, flat_half, (h, h + t_all, h + 2 * t_all, h + 3 * t_all,
                                                h + 4 * t_all), flat_rows, to)  # fmt: skip
                _join4(whole, flat_rows, to, flat_out, (f * out_h + 4 * ty + a) * out_w)
                dst = out[f, 4 * ty + a]
                for j in range(4 * whole, out_w):
                    dst[j] = rows[a, j - 4 * whole, whole]


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def winograd4_output(m, ty0, ty1, tw, f0, f1, out):
    """F(4x4, 3x3): m (36, f1-f0, (ty1-ty0)*tw) -> rows 4*ty0..4*ty1 of out (_output_4x4)."""
    _output_4x4(m, ty0, ty1, tw, f0, f1, out, 6)


# Winograd F(2x2, 3x3) at stride 2: the input's even and odd columns (rows) are two phases; the
# even phase meets taps 0 and 2 of the kernel (a 2-tap F(2,2): 3 products for 2 outputs), the odd
# phase tap 1 (2 products). One 5x5 input tile d (rows and columns 4 apart between tiles) gives
# a 2x2 output tile as A^T [U * (B^T d B)] A with U = G g G^T: 25 products, im2col 36. Along one
# axis, samples s0..s4 and taps w0..w2: B^T s = (s0 - s2, s2, s4 - s2, s1, s3), G w = (w0,
# w0 + w2, w2, w1, w1), y0 = m0 + m1 + m3, y1 = m1 + m2 + m4. The transforms only add.
@njit(cache=True, inline="always")
def _at5(m0, m1, m2, m3, m4):
    """A^T m for F(2, 3) at stride 2: the rows 1 1 0 1 0 / 0 1 1 0 1."""
    return m0 + m1 + m3, m1 + m2 + m4


def _bt5(s0, s1, s2, s3, s4):
    """B^T s for stride-2 F(2, 3): the rows 1 0 -1 0 0 / 0 0 1 0 0 / 0 0 -1 0 1 / 0 1 0 0 0 /
    0 0 0 1 0 (s0 - s2, s2, s4 - s2, s1, s3)."""
    return s0 - s2, s2, s4 - s2, s1, s3


def _bt5_moved(s0, s2, s4):
    """_bt5's two rows that are not a sample moved."""
    return s0 - s2, s4 - s2


_bt5_rows = _lanewise(_bt5)
_bt5_moved_rows = _lanewise(_bt5_moved)
_at5_rows = _lanewise(getattr(_at5, "py_func", _at5))


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def winograd_s2_input(x, pad, ty0, ty1, tw, ch0, ch1, out):
    """Tile rows ty0..ty1 of channels ch0..ch1 of x (c, h, w) -> out (25, c, (ty1-ty0)*tw):
    B^T d B of each 5x5 tile d, element 5i+j of a tile (row i, column j) in out[5i+j].

    Tile (ty, tx) reads input rows 4ty-pad..4ty-pad+4 and columns 4tx-pad..4tx-pad+4, zero
    outside the image, as the convolution's padding does (rows split by _phase_plane).
    """
    rows = 4 * (ty1 - ty0) + 1
    # the plane's rows, then B^T's rows 0 and 2 down the columns of a tile row's five
    buf = np.empty((rows + 2, 4, tw + 1), np.float32)
    flat, dst = buf.reshape(-1), out.reshape(-1)
    line, part = 4 * (tw + 1), tw + 1  # floats in a plane row, in one phase of it
    down = rows * line  # where B^T's rows 0 and 2 go
    c, t_all = out.shape[1], out.shape[2]
    e = c * t_all  # floats from one element to the next
    padded = np.empty(line, np.float32)  # _phase_plane's scratch
    for ch in range(ch0, ch1):
        _phase_plane(x, ch, pad, 4 * ty0 - pad, buf[:rows], padded)
        for ty in range(ty0, ty1):
            r = 4 * (ty - ty0) * line
            _bt5_moved_rows(line, flat, (r, r + 2 * line, r + 4 * line), flat, (down, down + line))
            k0 = (ty - ty0) * tw
            for i in range(5):  # B^T's rows 1, 3 and 4 are plane rows 2, 1 and 3
                if i == 0 or i == 2:
                    p = down + (i // 2) * line
                else:
                    p = r + (2 if i == 1 else (1 if i == 3 else 3)) * line
                o = (5 * i * c + ch) * t_all + k0
                _bt5_rows(tw, flat, (p, p + part, p + 2 * part, p + 3 * part, p + 1),
                          dst, (o, o + e, o + 2 * e, o + 3 * e, o + 4 * e))  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def winograd_s2_output(m, ty0, ty1, tw, f0, f1, out):
    """Tiles of filters f0..f1 (m's filter axis starts at f0): m (25, f1-f0, (ty1-ty0)*tw) ->
    rows 2*ty0..2*ty1 of out (n, out_h, out_w) as A^T m A; outputs past the map's edge are
    dropped. A^T goes down the columns of all the step's tiles at once, as in winograd4_output."""
    _, out_h, out_w = out.shape
    t_all = (ty1 - ty0) * tw
    half = np.empty((10, t_all), np.float32)  # A^T applied down the tiles' columns
    two = np.empty((2, tw), np.float32)  # an output row: columns 2t, 2t + 1
    flat_m, flat_half, flat_two = m.reshape(-1), half.reshape(-1), two.reshape(-1)
    fm, tm = m.shape[1], m.shape[2]
    step = fm * tm  # floats from one element to the next
    whole = out_w // 2  # tiles whose two columns are inside
    for f in range(f0, f1):
        q = f - f0
        for j in range(5):  # column j of every tile: elements 5i+j, i = 0..4
            e = (j * fm + q) * tm
            _at5_rows(t_all, flat_m, (e, e + 5 * step, e + 10 * step, e + 15 * step,
                                      e + 20 * step), flat_half, (j * t_all, (5 + j) * t_all))  # fmt: skip
        for ty in range(ty0, ty1):
            k0 = (ty - ty0) * tw
            for a in range(min(2, out_h - 2 * ty)):  # output row a of every tile
                h = 5 * a * t_all + k0
                _at5_rows(tw, flat_half, (h, h + t_all, h + 2 * t_all, h + 3 * t_all,
                                          h + 4 * t_all), flat_two, (0, tw))  # fmt: skip
                dst, y0, y1 = out[f, 2 * ty + a], two[0], two[1]
                for t in range(whole):
                    dst[2 * t], dst[2 * t + 1] = y0[t], y1[t]
                if whole < tw:  # the last tile's first column only
                    dst[2 * whole] = y0[whole]


# Winograd F(4x4, 2x2) at stride 2: a 3x3 stride-2 convolution is a 2x2 stride-1 one over the
# input's four phases (even and odd rows times even and odd columns), 4c channels deep: kernel
# tap ky meets phase row u = (ky - pad) // 2 + i (of 2 taps) of row phase (ky - pad) % 2; the
# taps that fall outside are zero. F(4x4, 2x2) (points 0, +-1, 2 and infinity) makes 25
# products per 4x4 outputs of every phase channel: 6.25 per output and input channel, as the
# two-phase F(2x2) above, but its GEMMs are 4c deep instead of c and its transformed outputs a
# quarter as many (a 2x2 tile's 25 for 4 outputs), which is what the shallow layers (c = 32,
# 64) spend their time moving. A phase with one tap along an axis has U = 0 in one element row
# (column) whatever the weights; the products skip those phase channels (layers._phase_rows):
# 81 of their 100 depth at pad 1, 5.06 products per output. 2 threads, same process,
# alternating: yolov4-tiny's 32 -> 64 layer 3.21 -> 2.97 ms, yolov4-csp's two at 512 15.3 ->
# 13.9 and 14.2 -> 12.7 ms.
def _bt5f(s0, s1, s2, s3, s4):
    """B^T s for F(4, 2): the rows 2 -1 -2 1 0 / 0 -2 -1 1 0 / 0 2 -3 1 0 / 0 -1 0 1 0 /
    0 2 -1 -2 1."""
    two = _F(2.0)
    a, d32, d12 = s3 - s1, s3 - s2, s1 - s2
    return two * (s0 - s2) + a, d32 - two * s1, d32 + two * d12, a, (s4 - s2) - two * a


def _at5f(m0, m1, m2, m3, m4):
    """A^T m for F(4, 2): the rows 1 1 1 1 0 / 0 1 -1 2 0 / 0 1 1 4 0 / 0 1 -1 8 1."""
    s, d = m1 + m2, m1 - m2
    return m0 + s + m3, d + _F(2.0) * m3, s + _F(4.0) * m3, d + _F(8.0) * m3 + m4


_bt5f_rows = _lanewise(_bt5f)
_at5f_rows = _lanewise(_at5f)


@njit(cache=True, inline="always")
def _phase_row(rows_of, e, ph, ch, t_all):
    """Floats from element e's start to the row of phase ph of channel ch (rows t_all apart)."""
    return (ch * rows_of[e, ph, 0] + rows_of[e, ph, 1]) * t_all


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def winograd_s2f4_input(x, pad, ty0, ty1, tw, ch0, ch1, out, rows_of):
    """Tile rows ty0..ty1 of channels ch0..ch1 of x (c, h, w) -> out (25, 4c, (ty1-ty0)*tw):
    B^T d B of each 5x5 tile d of each of the channel's phases p = 2 py + px (row phase py,
    column phase px), element e = 5i+j in out[e], in row ch * rows_of[e, p, 0] +
    rows_of[e, p, 1] (Convolutional.phase_rows; (4, p) everywhere: row 4 ch + p).

    Tile (ty, tx) of phase (py, px) reads input rows 8ty + 2a0 + py + 2i and columns
    8tx + 2a0 + px + 2j (i, j = 0..4; a0 = (-pad) // 2), zero outside the image (rows split
    by _phase_plane into 8 column phases)."""
    a0 = (-pad) // 2
    rows = 8 * (ty1 - ty0) + 2
    line, part = 8 * (tw + 1), tw + 1  # floats in a plane row, in one phase of it
    # the plane's rows, then B^T down the columns of a tile row's five rows of each row phase
    buf = np.empty((rows + 10, 8, tw + 1), np.float32)
    flat, dst = buf.reshape(-1), out.reshape(-1)
    down = rows * line
    depth, t_all = out.shape[1], out.shape[2]
    e = depth * t_all  # floats from one element to the next
    padded = np.empty(line, np.float32)  # _phase_plane's scratch
    for ch in range(ch0, ch1):
        _phase_plane(x, ch, -2 * a0, 8 * ty0 + 2 * a0, buf[:rows], padded)
        for ty in range(ty0, ty1):
            k0 = (ty - ty0) * tw
            for py in range(2):
                q = (8 * (ty - ty0) + py) * line  # plane rows q, q + 2 lines, ...
                d = down + 5 * py * line
                _bt5f_rows(line, flat, (q, q + 2 * line, q + 4 * line, q + 6 * line,
                                        q + 8 * line),
                           flat, (d, d + line, d + 2 * line, d + 3 * line, d + 4 * line))  # fmt: skip
                for i in range(5):
                    p = d + i * line
                    for px in range(2):  # columns 2j + px: phases px, px + 2, .., px of tile t + 1
                        ph = 2 * py + px
                        o = 5 * i * depth * t_all + k0  # element 5i's first run
                        _bt5f_rows(tw, flat, (p + px * part, p + (px + 2) * part,
                                              p + (px + 4) * part, p + (px + 6) * part,
                                              p + px * part + 1),
                                   dst, (o + _phase_row(rows_of, 5 * i, ph, ch, t_all),
                                         o + e + _phase_row(rows_of, 5 * i + 1, ph, ch, t_all),
                                         o + 2 * e + _phase_row(rows_of, 5 * i + 2, ph, ch, t_all),
                                         o + 3 * e + _phase_row(rows_of, 5 * i + 3, ph, ch, t_all),
                                         o + 4 * e + _phase_row(rows_of, 5 * i + 4, ph, ch,
                                                                t_all)))  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def winograd_s2f4_output(m, ty0, ty1, tw, f0, f1, out):
    """F(4x4, 2x2): m (25, f1-f0, (ty1-ty0)*tw) -> rows 4*ty0..4*ty1 of out (_output_4x4)."""
    _output_4x4(m, ty0, ty1, tw, f0, f1, out, 5)


# --- GEMM with a packed A --------------------------------------------------------------------
# C = A @ B for the products whose A (the weights) is fixed, packed once (gemm.pack) in the order
# the inner loop reads it; BLAS packs A again on every call, and on a Winograd layer's products
# (A filters x channels, B channels x tiles, with 16-49 tiles or few filters) that copy is much
# of the work: OpenBLAS runs (512 x 512) @ (512 x 16) at ~40 GFLOP/s on one core, this at ~70.
# The inner loop keeps a 6 x 2w tile of C in twelve w-float vectors, w = GEMM_VEC (generic LLVM
# vector IR through a Numba intrinsic, which LLVM lowers to the CPU's own vector instructions;
# checked on AVX2 and AVX-512, see gemm.PACKED): each step of k loads two vectors of a row of B
# and multiply-adds them with 6 broadcast values of A. Columns past the last multiple of w are
# copied into scratch first and their tile goes through a scratch tile (or, 1-3 of them, one
# column at a time: _gemm_column); a last block of fewer than 6 rows (A is packed with zero
# rows) has only its own rows stored: nothing is read or written outside the arrays.
GEMM_MR = 6  # rows of A (filters) per tile


def host_cpu_features() -> dict:
    """This CPU's features as LLVM names them ({} where LLVM gives no list)."""
    try:
        from llvmlite import binding

        return dict(binding.get_host_cpu_features())
    except Exception:
        return {}


def _compiled_for_avx512() -> bool:
    """Whether Numba compiles for a CPU with AVX-512F: the features it is told to use
    (NUMBA_CPU_FEATURES), else the host's. Numba keys its on-disk cache by the same features,
    so code built with either vector width is never loaded where the other applies."""
    import numba

    told = numba.config.CPU_FEATURES
    if told:
        return "+avx512f" in told.split(",")
    return bool(host_cpu_features().get("avx512f"))


# Floats per vector of the GEMM's tiles: 16 (a ZMM register) with AVX-512's 32 registers, where
# twelve 16-float accumulators fit as twelve 8-float ones do in AVX2's 16. One core of an AVX-512
# CPU (AMD Zen 5): (256 x 256) @ (256 x 64) 127 -> 258 GFLOP/s, (256 x 384) @ (384 x 192) 130 ->
# 222 against 8-float vectors.
GEMM_VEC = 16 if _compiled_for_avx512() else 8
GEMM_NR = 2 * GEMM_VEC  # columns of B per tile: two vectors
_VEC_IR = ir.VectorType(_F32_IR, GEMM_VEC)
# Each step of k asks for A's floats this far ahead (2 KB, ~85 steps) into the cache. A small
# map's products read each block of U once, streamed from memory: (512 x 512) @ (512 x 16) on
# one core, a new U for each of 36 elements, 3.70 -> 3.21-3.33 ms (with one U repeated, 3.1 either
# way); yolov3-tiny's Winograd layers on 2 threads 1-10% faster (its 13x13 512 -> 1024 layer
# 4.39-4.67 -> 3.98-4.03 ms; the forward 23.5-23.7 -> 21.9-22.2 ms, --layers, two runs each).
# The 16-float tile takes a step of k in half the time, so it looks twice as far ahead: on 2
# threads of a Zen 5, separate processes in turn, yolov4-tiny's forward 11.3-11.5 -> 10.7-11.0
# ms (its 13x13 512 -> 512 layer 1.46 -> 1.17), yolov3-tiny's 12.8 -> 11.9-12.0 (a slow phase);
# 2048 floats (8 KB) ahead was no faster again.
GEMM_PREFETCH = 1024 if GEMM_VEC == 16 else 512


def _fmuladd(builder, width: int = 8):
    """fmuladd on `width`-float vectors: one FMA where the CPU has it, else a multiply and an
    add."""
    vt = ir.VectorType(_F32_IR, width)
    vector_type = ir.FunctionType(vt, [vt, vt, vt])
    return cgutils.get_or_insert_function(builder.module, vector_type, f"llvm.fmuladd.v{width}f32")


def _splat(builder, value, width: int = 8):
    """A `width`-float vector of one float."""
    i32, vt = ir.IntType(32), ir.VectorType(_F32_IR, width)
    x = builder.insert_element(ir.Constant(vt, ir.Undefined), value, ir.Constant(i32, 0))
    return builder.shuffle_vector(x, ir.Constant(vt, ir.Undefined),
                                  ir.Constant(ir.VectorType(i32, width), [0] * width))  # fmt: skip


def _store_rows(builder, pc, ldc, rows, store):
    """store(r, address of C's row r) for the block's rows r < rows (its last rows may lie
    past C's, and are not stored); C's rows ldc floats apart from pc."""
    for r in range(GEMM_MR):
        with builder.if_then(builder.icmp_signed(">", rows, ir.Constant(rows.type, r)),
                             likely=True):  # fmt: skip
            store(r, builder.gep(pc, [builder.mul(ir.Constant(ldc.type, r), ldc)]))


def _gemm_tile(vectors: int):
    """An intrinsic tile(a, b, ldb, c, ldc, k, rows): C[:rows, :w*vectors] = (Ap @ B)[:rows],
    where Ap is one packed block (k x 6, contiguous; rows past `rows` are computed, not
    stored), B's rows (w*vectors floats each, w = GEMM_VEC) are ldb floats apart and C's rows
    ldc apart.
    Arguments are addresses and float counts; the caller keeps every one of them inside its
    arrays (this is the only code here that Numba's bounds checks cannot see)."""

    @intrinsic
    def tile(typingctx, a, b, ldb, c, ldc, k, rows):
        sig = types.void(*(types.intp,) * 7)

        def codegen(context, builder, signature, args):
            a, b, ldb, c, ldc, k, rows = args
            fptr, vptr = _F32_IR.as_pointer(), _VEC_IR.as_pointer()
            pa, pb, pc = (builder.inttoptr(x, fptr) for x in (a, b, c))
            i32 = ir.IntType(32)
            zero = ir.Constant(_VEC_IR, [0.0] * GEMM_VEC)
            acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(vectors)]
                   for _ in range(GEMM_MR)]  # fmt: skip
            fma = _fmuladd(builder, GEMM_VEC)
            i8p = ir.IntType(8).as_pointer()
            prefetch_type = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            prefetch = cgutils.get_or_insert_function(builder.module, prefetch_type,
                                                      "llvm.prefetch.p0i8")  # fmt: skip
            with cgutils.for_range(builder, k) as loop:
                i = loop.index
                # A, GEMM_PREFETCH floats ahead (a hint: no fault past the array's end)
                ahead = builder.add(builder.mul(i, ir.Constant(i.type, GEMM_MR)),
                                    ir.Constant(i.type, GEMM_PREFETCH))  # fmt: skip
                builder.call(prefetch, [builder.bitcast(builder.gep(pa, [ahead]), i8p),
                                        ir.Constant(i32, 0), ir.Constant(i32, 3),
                                        ir.Constant(i32, 1)])  # fmt: skip
                row = builder.gep(pb, [builder.mul(i, ldb)])
                bv = [builder.load(builder.bitcast(builder.gep(row, [ir.Constant(i.type, v)]),
                                                   vptr), align=4)
                      for v in range(0, vectors * GEMM_VEC, GEMM_VEC)]  # fmt: skip
                col = builder.gep(pa, [builder.mul(i, ir.Constant(i.type, GEMM_MR))])
                for r in range(GEMM_MR):
                    x = _splat(builder, builder.load(builder.gep(col, [ir.Constant(i.type, r)])),
                               GEMM_VEC)
                    for h in range(vectors):
                        total = builder.call(fma, [x, bv[h], builder.load(acc[r][h])])
                        builder.store(total, acc[r][h])

            def store(r, row):
                for h in range(vectors):
                    at = builder.gep(row, [ir.Constant(ldc.type, GEMM_VEC * h)])
                    at = builder.bitcast(at, vptr)
                    builder.store(builder.load(acc[r][h]), at, align=4)

            _store_rows(builder, pc, ldc, rows, store)
            return context.get_dummy_value()

        return sig, codegen

    return tile


_gemm_tile_wide = _gemm_tile(2)
_gemm_tile_narrow = _gemm_tile(1)
# Tail columns past the last multiple of GEMM_VEC cost a whole vector's tile each block, the
# work of 8 (or 16) columns for as few as 1, after a copy into zero-padded scratch. Up to
# GEMM_COLUMN_TAIL of them go one by one through _gemm_column instead, ~0.5 ns a step of k each
# (from the timings below; with 16-float vectors on a Zen 5, (256 x 256) @ (256 x 33-35):
# ~3.5 us a column against ~12 us for the scratch tile).
# A 26x26 map's 49 Winograd tiles, (256 x 256) @ (256 x 49) for each of 36 elements on one
# core: 3.39 -> 3.02 ms (48 columns: 2.78); 50 columns 5%, 51 1-2% faster; yolov4-tiny's four
# 26x26 layers 7.2 -> 6.5 ms on 2 threads. From 4 columns the tile is as fast.
GEMM_COLUMN_TAIL = 3


@intrinsic
def _gemm_column(typingctx, a, k, b, ldb, c, ldc, rows):
    """C[:rows, 0] = (Ap @ B[:, 0])[:rows] for one column of B (its values ldb floats apart)
    and one packed block Ap (k x 6, contiguous) into C's column (rows ldc apart): each step of
    k one 8-float load of Ap's row (its 6 values and 2 of the next row's, which the last step
    does not read) times B's value, into 4 accumulators that take the steps in turn (the sum
    of a step's product waits on no other's), added at the end. Addresses and float counts, as
    for _gemm_tile."""
    sig = types.void(*(types.intp,) * 7)

    def codegen(context, builder, signature, args):
        a, k, b, ldb, c, ldc, rows = args
        fptr, vptr = _F32_IR.as_pointer(), _V8_IR.as_pointer()
        pa, pb, pc = (builder.inttoptr(x, fptr) for x in (a, b, c))
        i32 = ir.IntType(32)
        zero = ir.Constant(_V8_IR, [0.0] * 8)
        fma = _fmuladd(builder)
        acc = [cgutils.alloca_once_value(builder, zero) for _ in range(4)]
        six = ir.Constant(k.type, GEMM_MR)

        def step(i, row, into):
            x = _splat(builder, builder.load(builder.gep(pb, [builder.mul(i, ldb)])))
            builder.store(builder.call(fma, [row, x, builder.load(into)]), into)

        last = builder.sub(k, ir.Constant(k.type, 1))  # the steps before the last read 8 floats
        quads = builder.sdiv(last, ir.Constant(k.type, 4))
        with cgutils.for_range(builder, quads) as loop:
            for q in range(4):
                i = builder.add(builder.mul(loop.index, ir.Constant(k.type, 4)),
                                ir.Constant(k.type, q))  # fmt: skip
                at = builder.bitcast(builder.gep(pa, [builder.mul(i, six)]), vptr)
                step(i, builder.load(at, align=4), acc[q])
        start = builder.mul(quads, ir.Constant(k.type, 4))
        with cgutils.for_range(builder, builder.sub(last, start)) as loop:
            i = builder.add(start, loop.index)
            at = builder.bitcast(builder.gep(pa, [builder.mul(i, six)]), vptr)
            step(i, builder.load(at, align=4), acc[0])
        row = ir.Constant(_V8_IR, [0.0] * 8)  # the last step: its row's 6 values only
        for r in range(GEMM_MR):
            value = builder.load(builder.gep(pa, [builder.add(builder.mul(last, six),
                                                               ir.Constant(k.type, r))]))
            row = builder.insert_element(row, value, ir.Constant(i32, r))
        step(last, row, acc[1])
        total = builder.fadd(builder.fadd(builder.load(acc[0]), builder.load(acc[1])),
                             builder.fadd(builder.load(acc[2]), builder.load(acc[3])))  # fmt: skip
        _store_rows(builder, pc, ldc, rows, lambda r, at: builder.store(
            builder.extract_element(total, ir.Constant(i32, r)), at))  # fmt: skip
        return context.get_dummy_value()

    return sig, codegen
# Bytes of packed A that one sweep over B's columns reuses: in L2 while B's columns stream by.
# (1 << 17: (128 x 128) @ (128 x 128) 55 -> 78 GFLOP/s against blocks of A swept one by one.)
_GEMM_GROUP_BYTES = 1 << 17


@njit(cache=True, nogil=True)
def gemm_packed(ap, b, c, scratch):
    """c = A[:M] @ b, A packed as ap (ceil(M / 6), K, 6) (gemm.pack); b (K, N) and c (M, N)
    with unit column stride, rows any distance apart; scratch: float32 of >= GEMM_VEC * K +
    GEMM_MR * GEMM_NR (gemm.scratch_floats). Twin: float64 matmul (tests/test_gemm.py)."""
    m, n = c.shape
    k = b.shape[0]
    ldb, ldc = b.strides[0] // 4, c.strides[0] // 4
    vec = GEMM_VEC
    full = n - n % vec  # columns the tiles read from b itself
    tail = n - full
    columns = tail if tail <= GEMM_COLUMN_TAIL else 0  # tail columns done one by one
    bt = scratch[: vec * k]  # b's last `tail` columns, zero-padded to vec (or one by one)
    ct = scratch[vec * k : vec * k + GEMM_MR * GEMM_NR]  # a tile of C whose columns c lacks
    if columns:
        n, tail = full, 0
        for j in range(columns):  # contiguous: read in place, each value is in another line
            for i in range(k):
                bt[j * k + i] = b[i, full + j]
    if tail:
        for i in range(k):
            for j in range(vec):
                bt[i * vec + j] = b[i, full + j] if j < tail else _F(0.0)
    pb, pc, pbt, pct = b.ctypes.data, c.ctypes.data, bt.ctypes.data, ct.ctypes.data
    blocks = ap.shape[0]
    group = max(1, _GEMM_GROUP_BYTES // (4 * GEMM_MR * k))  # blocks of A per sweep
    for g0 in range(0, blocks, group):
        j0 = 0
        while j0 < n:
            wide = j0 + GEMM_NR <= full
            width = GEMM_NR if wide else min(vec, n - j0)
            src, lds = (pb + 4 * j0, ldb) if j0 < full else (pbt, vec)
            for block in range(g0, min(blocks, g0 + group)):
                pa = ap[block].ctypes.data
                rows = min(GEMM_MR, m - block * GEMM_MR)
                if width >= vec:  # straight into c (its rows only)
                    at = pc + 4 * (block * GEMM_MR * ldc + j0)
                    if wide:
                        _gemm_tile_wide(pa, src, lds, at, ldc, k, rows)
                    else:
                        _gemm_tile_narrow(pa, src, lds, at, ldc, k, rows)
                    continue
                _gemm_tile_narrow(pa, src, lds, pct, GEMM_NR, k, rows)
                for r in range(rows):
                    for j in range(width):
                        c[block * GEMM_MR + r, j0 + j] = ct[r * GEMM_NR + j]
            j0 += width
        for block in range(g0, min(blocks, g0 + group)):
            pa = ap[block].ctypes.data
            rows = min(GEMM_MR, m - block * GEMM_MR)
            for j in range(columns):
                _gemm_column(pa, k, pbt + 4 * j * k, 1, pc + 4 * (block * GEMM_MR * ldc + full + j),
                             ldc, rows)  # fmt: skip


@njit(cache=True, nogil=True, inline="always")
def gemm_tiles(up, v, m, scratch):
    """A Winograd layer's products, one per element i of a tile: m[i] = U_i @ v[i], with up
    (elements, ceil(n / 6), c, 6) packed, v (elements, c, tiles) and m (elements, n, tiles)."""
    for i in range(up.shape[0]):
        gemm_packed(up[i], v[i], m[i], scratch)


# --- 3x3 convolutions of a few channels (a network's first layer), without im2col -------------
# Its im2col matrix is 9c rows of the whole map (c = 3: 27 x 173k floats at 416x416) and BLAS's
# product of 16-32 filters with it runs at ~37 GFLOP/s a core in the layer. Here each output
# row's 9c taps are read in place from a band of zero-padded input rows (split into even and odd
# columns at stride 2): a block of CONV_FR filters x CONV_COLS columns in twelve (or sixteen)
# vector accumulators, one tap at a time (a load per vector of the tap's row, a broadcast weight
# per filter, a multiply-add for each pair), stored once: with the bias added and leaky applied
# in registers where the activation is linear or leaky, else followed by bias + activation on
# the row while it is in cache (~78 GFLOP/s a core). With AVX2 4 filters x three 8-float
# vectors; with AVX-512 (GEMM_VEC 16: 32 registers) 8 filters x two 16-float vectors. One Zen 5
# core, against the 8-float blocks: yolov4-tiny's 3 -> 32 at 416 0.83 -> 0.57-0.63 ms (4 x 48:
# 0.68, 8 x 48: 0.63), yolov3-tiny's 3 -> 16 1.40 -> 0.81-0.82 (4 x 48: 0.89, 8 x 48: 0.85).
CONV_FR, CONV_VEC = (8, 2) if GEMM_VEC == 16 else (4, 3)  # filters, vectors per block
CONV_COLS = GEMM_VEC * CONV_VEC


@intrinsic
def _conv_block(typingctx, taps, ntaps, w, out, ldo, rows, j, bias, fused):
    """out[f * ldo + j : ... + CONV_COLS] = sum over t < ntaps of w[CONV_FR t + f] *
    row_t[j : j + CONV_COLS] for f < rows (<= CONV_FR), row_t at the address taps[t] (int64s),
    w the block's filters' weights tap by tap; fused 1: plus bias[f] (floats at the address
    bias), 2: then leaky, as _act_segment does, on the sums still in registers (a pass per row
    took ~0.1 ms of yolov4-tiny's first layer); 0: the sums. Addresses and counts; the caller
    keeps every read and write inside its arrays."""
    sig = types.void(*(types.intp,) * 9)

    def codegen(context, builder, signature, args):
        taps, ntaps, w, out, ldo, rows, j, bias, fused = args
        i64 = ir.IntType(64)
        fptr, vptr = _F32_IR.as_pointer(), _VEC_IR.as_pointer()
        ptaps = builder.inttoptr(taps, i64.as_pointer())
        pw, po, pb = (builder.inttoptr(v, fptr) for v in (w, out, bias))
        zero = ir.Constant(_VEC_IR, [0.0] * GEMM_VEC)
        acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(CONV_VEC)]
               for _ in range(CONV_FR)]  # fmt: skip
        fma = _fmuladd(builder, GEMM_VEC)
        with cgutils.for_range(builder, ntaps) as loop:
            t = loop.index
            row = builder.gep(builder.inttoptr(builder.load(builder.gep(ptaps, [t])), fptr), [j])
            bv = [builder.load(builder.bitcast(builder.gep(row, [ir.Constant(i64, v)]), vptr),
                               align=4) for v in range(0, CONV_COLS, GEMM_VEC)]  # fmt: skip
            wrow = builder.gep(pw, [builder.mul(t, ir.Constant(i64, CONV_FR))])
            for f in range(CONV_FR):
                x = builder.load(builder.gep(wrow, [ir.Constant(i64, f)]))
                x = _splat(builder, x, GEMM_VEC)
                for h in range(CONV_VEC):
                    builder.store(builder.call(fma, [x, bv[h], builder.load(acc[f][h])]),
                                  acc[f][h])  # fmt: skip
        biased = builder.icmp_signed(">", fused, ir.Constant(i64, 0))
        leaky = builder.icmp_signed("==", fused, ir.Constant(i64, 2))
        tenth = ir.Constant(_VEC_IR, [float(np.float32(0.1))] * GEMM_VEC)
        for f in range(CONV_FR):
            with builder.if_then(builder.icmp_signed(">", rows, ir.Constant(i64, f)), likely=True):
                dst = builder.gep(po, [builder.add(builder.mul(ir.Constant(i64, f), ldo), j)])
                b = builder.select(biased, builder.load(builder.gep(pb, [ir.Constant(i64, f)])),
                                   ir.Constant(_F32_IR, 0.0))  # fmt: skip
                for h in range(CONV_VEC):
                    v = builder.load(acc[f][h])
                    v = builder.select(biased, builder.fadd(v, _splat(builder, b, GEMM_VEC)), v)
                    low = builder.fmul(tenth, v)
                    v = builder.select(leaky, builder.select(builder.fcmp_ordered(">", v, zero), v,
                                                             low), v)  # fmt: skip
                    at = builder.bitcast(builder.gep(dst, [ir.Constant(i64, GEMM_VEC * h)]), vptr)
                    builder.store(v, at, align=4)
        return context.get_dummy_value()

    return sig, codegen


def conv3x3_plane_shape(c: int, w: int, stride: int, pad: int, rows: int) -> tuple:
    """The shape of conv3x3_rows' band of padded input rows for `rows` output rows."""
    return (c, stride * (rows - 1) + 3, stride, -(-(w + 2 * pad) // stride) + CONV_COLS + 2)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def conv3x3_rows(x, wp, bias, code, stride, pad, oy0, oy1, out, plane, taps, fact, ap):
    """Output rows oy0..oy1 of a 3x3 convolution (one group, undilated, stride 1 or 2) of x
    (c, h, w) with the weights packed as wp (ceil(n / CONV_FR), 9c, CONV_FR), [block, (ch, ky,
    kx), f], plus bias and activation (the C bias_activate at fact, its scratch at ap: compiled
    once, not again in here): out (n, out_h, out_w), out_w >= CONV_COLS. plane
    (conv3x3_plane_shape(..., oy1 - oy0)) and taps (int64, 9c) are scratch: plane[ch, r, p, i]
    is input row stride * oy0 - pad + r at column stride * i + p - pad, zero outside the
    image; tap (ch, ky, kx) of output row oy reads plane[ch, stride (oy - oy0) + ky,
    kx % stride, kx // stride + ox]. Twin: the direct convolution (tests/reference.py)."""
    c = x.shape[0]
    n, out_h, out_w = out.shape
    nr, pw = plane.shape[1], plane.shape[3]
    padded = np.empty(stride * pw, np.float32)  # _phase_plane's scratch
    for ch in range(c):
        _phase_plane(x, ch, pad, stride * oy0 - pad, plane[ch], padded)
    base, ldo = plane.ctypes.data, out_h * out_w
    tp, op, bp = taps.ctypes.data, out.ctypes.data, _at(bias)
    fused = 1 if code == LINEAR else (2 if code == LEAKY else 0)  # in the blocks' stores
    for oy in range(oy0, oy1):
        for ch in range(c):
            for ky in range(3):
                r = stride * (oy - oy0) + ky
                for kx in range(3):
                    at = ((ch * nr + r) * stride + kx % stride) * pw + kx // stride
                    taps[(ch * 3 + ky) * 3 + kx] = base + 4 * at
        for g in range(wp.shape[0]):
            f0 = g * CONV_FR
            rows = min(CONV_FR, n - f0)
            at, wg = op + 4 * (f0 * ldo + oy * out_w), wp[g].ctypes.data
            bg = bp + 4 * f0
            for q in range(-(-out_w // CONV_COLS)):  # the last block ends at out_w (some of
                j = min(q * CONV_COLS, out_w - CONV_COLS)  # its columns done twice): one call
                _conv_block(tp, 9 * c, wg, at, ldo, rows, j, bg, fused)  # site, half the IR
        if not fused:
            _ccall(fact, (op, n, ldo, bp, code, oy * out_w, (oy + 1) * out_w, ap))


# --- pool jobs run whole in the JIT ----------------------------------------------------------
# A pool job whose steps are Python (threads._Job) hands the GIL between the threads at every
# step and kernel boundary; on a VM a thread that finds the GIL taken sleeps, and waking it
# costs 30-80 us. A job here is one nogil call per thread that claims its steps with an atomic
# counter and runs them back to back, so a worker takes the GIL once per job, at a moment its
# caller is inside the same call (threads.Pool.run_jit). Job state: an int64 array,
# [JOB_NEXT] the next unclaimed step, [JOB_DONE] steps finished, [JOB_ENTERED] the address of
# the counter its caller bumps on entering (its pool's; 0: none).
JOB_NEXT, JOB_DONE, JOB_ENTERED = 0, 1, 2
JOB_FIRST_DONE = 3  # steps of a job's first part finished (winograd_job's small maps)
JOB_FIELDS = 8  # one 64-byte line per job state and per worker's flags
_I64_IR = ir.IntType(64)
_X86 = __import__("platform").machine().lower() in ("x86_64", "amd64", "i686", "x86")


@intrinsic
def _atomic_add(typingctx, addr, value):
    """*addr += value (int64, sequentially consistent); returns the value before."""
    sig = types.int64(types.intp, types.int64)

    def codegen(context, builder, signature, args):
        ptr = builder.inttoptr(args[0], _I64_IR.as_pointer())
        return builder.atomic_rmw("add", ptr, args[1], "seq_cst")

    return sig, codegen


@intrinsic
def _atomic_read(typingctx, addr):
    """*addr (int64) with acquire order: a load the compiler may not hoist out of a loop."""
    sig = types.int64(types.intp)

    def codegen(context, builder, signature, args):
        ptr = builder.inttoptr(args[0], _I64_IR.as_pointer())
        return builder.load_atomic(ptr, "acquire", 8)

    return sig, codegen


@intrinsic
def _spin_pause(typingctx):
    """x86's PAUSE (a spin-wait hint that spares the other hyperthread); nothing elsewhere."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        if _X86:
            pause = ir.FunctionType(ir.VoidType(), [])
            builder.call(cgutils.get_or_insert_function(builder.module, pause,
                                                        "llvm.x86.sse2.pause"), [])  # fmt: skip
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def job_claim(st):
    """Claim the next step of job state st: its index (>= the step count once all are taken)."""
    return _atomic_add(_at(st) + 8 * JOB_NEXT, 1)


@njit(cache=True, nogil=True)
def job_enter(st, slot):
    """A thread is inside the job; the caller (slot 0) also counts itself in at st[JOB_ENTERED],
    the address of its pool's counter that waiting workers watch (0: none)."""
    if slot == 0 and st[JOB_ENTERED]:
        _atomic_add(st[JOB_ENTERED], 1)


@njit(cache=True, nogil=True)
def job_finish_wait(st, done, steps, spins):
    """The caller, its own steps done: count them, then spin (up to `spins` pauses) until all
    `steps` are finished. True if they are; else the caller sleeps and asks again (done 0)."""
    at = _at(st) + 8 * JOB_DONE
    if done:
        _atomic_add(at, done)
    for _ in range(spins):
        if _atomic_read(at) >= steps:
            return True
        _spin_pause()
    return _atomic_read(at) >= steps


@njit(cache=True, nogil=True)
def worker_wait(flags, entered, seen, prev, prev_done, spins):
    """A pool worker between jobs: count prev_done steps it finished of the job state at
    address prev, then spin up to `spins` pauses until a job is posted after `seen` (int64 at
    address flags: the jobs posted to this worker) and, for a JIT job (the int64 after it,
    > 0), until its caller is inside it (the int64 at address entered reaches that), so that
    the GIL is free when this thread takes it. Returns the jobs posted (== seen if it gave up:
    the worker then sleeps on its queue). Addresses, not arrays: the worker keeps the job
    states alive, and no array type is needed to call it."""
    if prev_done:
        _atomic_add(prev + 8 * JOB_DONE, prev_done)
    posted = seen
    for _ in range(spins):
        posted = _atomic_read(flags)
        if posted != seen:
            break
        _spin_pause()
    if posted == seen:
        return seen
    target = _atomic_read(flags + 8)
    for _ in range(spins if target > 0 else 0):
        if _atomic_read(entered) >= target:
            break
        _spin_pause()
    return posted


# The kernels a JIT job calls, as C functions it calls through their addresses: a jitted caller
# links its callees' code and optimizes it all again, so jobs calling the transforms, the GEMM
# and bias + activation directly took 5-14 s each to compile, and a model's first multi-image
# run twice as long. Made (or loaded from Numba's cache) on first use, each once per process;
# the kernels they wrap are inline="always", so that each is compiled once, inside its wrapper
# (a first 2-image detect of yolov4-csp: 22.8 -> 18.9 s; 16.5 s before the jobs).
def _pointer_at(item, item_ir):
    """An intrinsic p(addr): the pointer to `item` values at integer address addr (for
    carray)."""

    @intrinsic
    def pointer(typingctx, addr):
        sig = types.CPointer(item)(types.int64)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], item_ir.as_pointer())

        return sig, codegen

    return pointer


_f32p = _pointer_at(types.float32, _F32_IR)
_i64p = _pointer_at(types.int64, _I64_IR)


@intrinsic
def _ccall(typingctx, addr, args):
    """Call the C function at address addr (c_address) with the integers of tuple args, each
    passed as an int64."""
    if not isinstance(args, types.BaseTuple):
        return None
    sig = types.void(addr, args)

    def codegen(context, builder, signature, llargs):
        fn_addr, values = llargs
        kinds = signature.args[1]
        ints = [context.cast(builder, builder.extract_value(values, i), kind, types.int64)
                for i, kind in enumerate(kinds)]  # fmt: skip
        fnty = ir.FunctionType(ir.VoidType(), [_I64_IR] * len(ints))
        builder.call(builder.inttoptr(fn_addr, fnty.as_pointer()), ints)
        return context.get_dummy_value()

    return sig, codegen


# The transforms' V and M are (elements, rows, ld): ld floats a row (tile_row_floats of the
# step's tiles), and rows >= the channels or filters (element_rows); the kernels take both from
# the array's shape and fill the first tiles of the first rows only.
# The input transforms take tp, the address of stride-2 F(4x4, 2x2)'s phase row table
# (winograd_s2f4_input's rows_of); the others do not read it.
def _c_in4(xp, c, h, w, pad, ty0, ty1, tw, ch0, ch1, vp, rows, ld, tp):
    winograd4_input(carray(_f32p(xp), (c, h, w)), pad, ty0, ty1, tw, ch0, ch1,
                    carray(_f32p(vp), (36, rows, ld)))  # fmt: skip


def _c_in2(xp, c, h, w, pad, ty0, ty1, tw, ch0, ch1, vp, rows, ld, tp):
    winograd_input(carray(_f32p(xp), (c, h, w)), pad, ty0, ty1, tw, ch0, ch1,
                   carray(_f32p(vp), (16, rows, ld)))  # fmt: skip


def _c_in_s2(xp, c, h, w, pad, ty0, ty1, tw, ch0, ch1, vp, rows, ld, tp):
    winograd_s2_input(carray(_f32p(xp), (c, h, w)), pad, ty0, ty1, tw, ch0, ch1,
                      carray(_f32p(vp), (25, rows, ld)))  # fmt: skip


def _c_in_s2f4(xp, c, h, w, pad, ty0, ty1, tw, ch0, ch1, vp, rows, ld, tp):
    winograd_s2f4_input(carray(_f32p(xp), (c, h, w)), pad, ty0, ty1, tw, ch0, ch1,
                        carray(_f32p(vp), (25, rows, ld)),
                        carray(_i64p(tp), (25, 4, 2)))  # fmt: skip


def _c_out_s2f4(mp, rows, ld, ty0, ty1, tw, f0, f1, yp, n, out_h, out_w):
    winograd_s2f4_output(carray(_f32p(mp), (25, rows, ld)), ty0, ty1, tw, f0, f1,
                         carray(_f32p(yp), (n, out_h, out_w)))  # fmt: skip


def _c_out4(mp, rows, ld, ty0, ty1, tw, f0, f1, yp, n, out_h, out_w):
    winograd4_output(carray(_f32p(mp), (36, rows, ld)), ty0, ty1, tw, f0, f1,
                     carray(_f32p(yp), (n, out_h, out_w)))  # fmt: skip


def _c_out2(mp, rows, ld, ty0, ty1, tw, f0, f1, yp, n, out_h, out_w):
    winograd_output(carray(_f32p(mp), (16, rows, ld)), ty0, ty1, tw, f0, f1,
                    carray(_f32p(yp), (n, out_h, out_w)))  # fmt: skip


def _c_out_s2(mp, rows, ld, ty0, ty1, tw, f0, f1, yp, n, out_h, out_w):
    winograd_s2_output(carray(_f32p(mp), (25, rows, ld)), ty0, ty1, tw, f0, f1,
                       carray(_f32p(yp), (n, out_h, out_w)))  # fmt: skip


def _c_gemm_tiles(up, a, blocks, c, b0, b1, vp, vrows, ldv, t, mp, mrows, ldm, rows, sp,
                  floats, dp):  # fmt: skip
    """m[:, :rows, :t] = U's blocks b0..b1 (of up: (a, blocks, c, 6)) @ v[:, :c, :t], v
    (a, vrows, ldv) and m (a, mrows, ldm) (their rows reach past t columns, which are not read;
    their elements may have rows past c and `rows`). A 1x1 layer's product is the case a = 1.
    dp: 0, or the address of int64 depths (a,): element i's product then only d = depths[i]
    deep, U_i's first d rows @ v[i, :d] (the rest of U_i is 0: stride-2 F(4x4, 2x2))."""
    u = carray(_f32p(up), (a, blocks, c, GEMM_MR))
    v = carray(_f32p(vp), (a, vrows, ldv))[:, :c, :t]
    m = carray(_f32p(mp), (a, mrows, ldm))[:, :rows, :t]
    scratch = carray(_f32p(sp), (floats,))
    for i in range(a):  # one call of gemm_packed: LLVM inlines each (2 s more of compiling)
        d = c
        if dp != 0:
            d = carray(_i64p(dp), (a,))[i]
        gemm_packed(u[i, b0:b1], v[i, :d], m[i], scratch)


def _c_bias_activate(yp, rows, cols, bp, code, lo, hi, sp):
    s = carray(_f32p(sp), (ACT_SCRATCH,))
    bias_activate(carray(_f32p(yp), (rows, cols)), carray(_f32p(bp), (rows,)), code, lo, hi, s,
                  s[_BLOCK:].view(np.int32))  # fmt: skip


C_KERNELS = {"in4": _c_in4, "in2": _c_in2, "in_s2": _c_in_s2, "in_s2f4": _c_in_s2f4,
             "out4": _c_out4, "out2": _c_out2, "out_s2": _c_out_s2, "out_s2f4": _c_out_s2f4,
             "gemm_tiles": _c_gemm_tiles,
             "bias_activate": _c_bias_activate}  # fmt: skip
_C_MADE: dict = {}
_C_LOCK = __import__("threading").Lock()


def _c_made(name: str):
    made = _C_MADE.get(name)
    if made is None:
        with _C_LOCK:
            made = _C_MADE.get(name)
            if made is None:
                body = C_KERNELS[name]
                n = body.__code__.co_argcount
                sig = types.void(*([types.int64] * n))
                # the kernels inlined here (inline="always": compiled once, in this function)
                # keep their error model: no zero-division checks in the loops
                made = _C_MADE[name] = cfunc(sig, cache=True, error_model="numpy")(body)
    return made


def c_address(name: str) -> int:
    """The address of C_KERNELS[name] compiled as a C function of int64s (cached on disk)."""
    return _c_made(name).address


def c_function(name: str):
    """C_KERNELS[name] as a ctypes function of Python ints (released from the GIL)."""
    return _c_made(name).ctypes


@njit(cache=True, inline="always")
def _at(a):
    """a's data address as an int64 (ctypes.data is unsigned, and uint64 + int64 is a float)."""
    return np.int64(a.ctypes.data)


# A Winograd step's transformed inputs V (elements, channels, tiles) and products M (elements,
# filters, tiles) have rows of a whole number of 8-float vectors (the tiles past t are not read),
# in a 64-byte-aligned workspace (layers.aligned_empty): every row of B the GEMM's tiles load
# starts on a vector, where rows of t floats (26x26 maps: 49 tiles) start anywhere and a 16-wide
# load crosses cache lines. (256 x 256) @ (256 x 49) for each of 36 elements on one core: 75 ->
# 83-87 GFLOP/s; (256 x 384) @ (384 x 49): 76 -> 83-88. 2 threads, same process, alternating
# (150 forwards each; with the arena aligned too): yolov4-tiny's layer sums 25.59 -> 25.27 ms,
# yolov3-tiny's 19.36 -> 19.00. Its 52x52 layers ran 3-6% slower: their elements became a
# multiple of 128 floats (element_rows). With element_rows and _short_run, yolov4-tiny's
# forward 24.62 -> 23.20 ms (120 each).
@njit(cache=True, inline="always")
def tile_row_floats(t, tw):
    """Floats in a row of V or M holding t tiles, tw a tile row: room for a last tile row's
    run of 8 (_short_run) where tw < 8; not a multiple of 128 (element_rows)."""
    ld = (max(t, t - tw + 8) + GEMM_VEC - 1) // GEMM_VEC * GEMM_VEC
    return ld + GEMM_VEC if ld % 128 == 0 else ld


# The transforms write and read the rows of all of a tile's elements at once (6 of 36 per pass of
# F(4x4)'s), one element's rows c * ld floats from the next; where that is a multiple of 128
# floats (c a multiple of 128, ld of 8: most layers), those rows fall in the same few sets of
# the L1 cache and evict each other. An element with a row or two more than c spreads them.
# One core, F(4x4) input / output transform: 13x13x512 648 -> 427 / 273 -> 166 us, 26x26x256
# 547 -> 360 / 279 -> 198, 32x32x256 576 -> 411 / 185 -> 164; 104x104x64 the same.
@njit(cache=True, inline="always")
def element_rows(rows, ld):
    """Rows of an element of V or M of rows channels or filters and rows of ld floats: rows,
    or the next count whose element is not a multiple of 128 floats (ld is not one)."""
    r = rows
    while (r * ld) % 128 == 0:
        r += 1
    return r


@njit(cache=True, inline="always")
def step_layout(t, tw, depth, filters):
    """(ld, rows of a V element, rows of an M element) of a Winograd step of t tiles (tw a
    tile row), products `depth` deep, of `filters` filters: V (elements, rows, ld), then M."""
    ld = tile_row_floats(t, tw)
    return ld, element_rows(depth, ld), element_rows(filters, ld)


@njit(cache=True, nogil=True)
def winograd_job(st, slot, mode, calls, a, depth, tile, x, pad, th, tw, step, up, ws, per_slot,
                 out, bias, code, act, scratch, steps, rows_of, depths):  # fmt: skip
    """A Winograd layer's steps (see Convolutional._winograd_jit), claimed from job state st
    until none is left, on pool thread `slot`; calls: the C kernels' addresses (input and
    output transform, gemm_tiles, bias_activate). mode 0: the steps (ty0, ty1, f0, f1) of the
    table `steps`, tile rows ty0..ty1 of filters f0..f1 (a multiple of GEMM_MR): each
    transform, products, output transform, bias + activation in this thread's part of the
    workspace ws (per_slot floats); mode 1, a small map: first its whole input transform into
    the start of ws, per_slot channels a step, then, once every one of those steps has ended
    (a thread that claims a later step waits for them: one job where there were two, and a
    worker that starts late still gets a share), its products, output transform, bias and
    activation, `step` filters a step (a multiple of GEMM_MR). depth: the products' (c, or
    4c for stride-2 F(4x4, 2x2)'s phase channels), and for that transform its phase row table
    rows_of and the depth of each element's product (Convolutional.phase_rows; empty arrays
    for the others: every product `depth` deep). Returns the steps it ran."""
    job_enter(st, slot)
    fin, fout, fgemm, fact = calls
    c, h, w = x.shape
    n, out_h, out_w = out.shape
    blocks = up.shape[1]
    floats = scratch.shape[1]
    xp, wsp, yp, upp, bp = _at(x), _at(ws), _at(out), _at(up), _at(bias)
    sp = _at(scratch) + 4 * slot * floats
    tp, dp = _at(rows_of), (_at(depths) if depths.size else 0)
    ap = _at(act) + 4 * slot * ACT_SCRATCH
    every = th * tw
    # the whole map's V, and (mode 1: step is the filters per step) each step's M after it
    ld_every, vr_every, mr_every = step_layout(every, tw, depth, step)
    first = -(-c // per_slot) if mode == 1 else 0  # mode 1: the input transform's steps
    done = 0
    while True:
        i = job_claim(st)
        if mode == 0:
            if i >= steps.shape[0]:
                return done
            ty0, ty1, f0, f1 = steps[i, 0], steps[i, 1], steps[i, 2], steps[i, 3]
            t = (ty1 - ty0) * tw
            ld, vr, mr = step_layout(t, tw, depth, f1 - f0)
            vp = wsp + 4 * slot * per_slot
            mp = vp + 4 * a * vr * ld
            _ccall(fin, (xp, c, h, w, pad, ty0, ty1, tw, 0, c, vp, vr, ld, tp))
            _ccall(fgemm, (upp, a, blocks, depth, f0 // GEMM_MR, -(-f1 // GEMM_MR), vp, vr, ld,
                           t, mp, mr, ld, f1 - f0, sp, floats, dp))  # fmt: skip
            _ccall(fout, (mp, mr, ld, ty0, ty1, tw, f0, f1, yp, n, out_h, out_w))
            lo, hi = tile * ty0 * out_w, min(out_h, tile * ty1) * out_w
            _ccall(fact, (yp + 4 * f0 * out_h * out_w, f1 - f0, out_h * out_w, bp + 4 * f0, code,
                          lo, hi, ap))  # fmt: skip
        elif i < first:
            ch0 = i * per_slot
            _ccall(fin, (xp, c, h, w, pad, 0, th, tw, ch0, min(c, ch0 + per_slot), wsp,
                         vr_every, ld_every, tp))  # fmt: skip
            _atomic_add(_at(st) + 8 * JOB_FIRST_DONE, 1)
        else:
            f0 = (i - first) * step
            if f0 >= n:
                return done
            while _atomic_read(_at(st) + 8 * JOB_FIRST_DONE) < first:
                _spin_pause()  # input steps still running on another thread
            f1 = min(n, f0 + step)
            mp = wsp + 4 * a * (vr_every + (i - first) * mr_every) * ld_every
            _ccall(fgemm, (upp, a, blocks, depth, f0 // GEMM_MR, -(-f1 // GEMM_MR), wsp, vr_every,
                           ld_every, every, mp, mr_every, ld_every, f1 - f0, sp, floats,
                           dp))  # fmt: skip
            _ccall(fout, (mp, mr_every, ld_every, 0, th, tw, f0, f1, yp, n, out_h, out_w))
            _ccall(fact, (yp + 4 * f0 * out_h * out_w, f1 - f0, out_h * out_w, bp + 4 * f0, code,
                          0, out_h * out_w, ap))  # fmt: skip
        done += 1


@njit(cache=True, nogil=True, error_model="numpy")
def conv3x3_job(st, slot, fact, x, wp, bias, code, stride, pad, rows, out, planes, taps, act):
    """conv3x3_rows in steps of `rows` output rows, claimed as in winograd_job; this thread's
    row of planes, taps and act (ACT_SCRATCH floats: the C bias_activate's scratch, at fact)."""
    job_enter(st, slot)
    out_h = out.shape[1]
    ap = _at(act) + 4 * slot * act.shape[1]
    done = 0
    while True:
        oy0 = job_claim(st) * rows
        if oy0 >= out_h:
            return done
        conv3x3_rows(x, wp, bias, code, stride, pad, oy0, min(out_h, oy0 + rows), out,
                     planes[slot], taps[slot], fact, ap)  # fmt: skip
        done += 1


# A 1x1 layer's columns go through the packed GEMM in chunks copied to rows a few floats longer
# than the chunk: read in place, B's rows are the map's size apart, a power of two on 256x256
# .. 16x16 maps, and a 6 x 16 tile's dozens of rows then fall in one set of the caches
# (yolov4-csp's 1x1 layers ran 2x slower so).
def conv1x1_chunk(k: int) -> int:
    """Columns per chunk for products k deep: ~64 KB of copied input, a multiple of 16."""
    return max(16, min(256, (16384 // max(k, 1)) // 16 * 16))


@njit(cache=True, nogil=True)
def conv1x1_job(st, slot, calls, ap, x, y, cols, fstep, chunk, bias, code, act, scratch, copies):
    """A 1x1 stride-1 convolution y (n, hw) = W x (c, hw) + bias, activated, W packed as ap
    (gemm.pack): steps of `cols` columns, or with fstep > 0 of fstep filters (a multiple of
    GEMM_MR), claimed as in winograd_job (calls: the C gemm_tiles' and bias_activate's addresses);
    the input `chunk` columns at a time through this thread's row of copies (>= c * (chunk +
    16) floats)."""
    job_enter(st, slot)
    fgemm, fact = calls
    c = x.shape[0]
    n, hw = y.shape
    blocks = ap.shape[0]
    floats = scratch.shape[1]
    ld = chunk + 16  # not a multiple of 4 KB
    bt = copies[slot]
    app, yp, bp, btp = _at(ap), _at(y), _at(bias), _at(bt)
    sp = _at(scratch) + 4 * slot * floats
    acp = _at(act) + 4 * slot * ACT_SCRATCH
    done = 0
    while True:
        i = job_claim(st)
        f0, f1, lo, hi = 0, n, 0, hw
        if fstep > 0:
            f0 = i * fstep
            if f0 >= n:
                return done
            f1 = min(n, f0 + fstep)
        else:
            lo = i * cols
            if lo >= hw:
                return done
            hi = min(hw, lo + cols)
        for s0 in range(lo, hi, chunk):
            s1 = min(hi, s0 + chunk)
            for k in range(c):
                src, dst = x[k, s0:s1], bt[k * ld : k * ld + s1 - s0]
                for j in range(s1 - s0):
                    dst[j] = src[j]
            _ccall(fgemm, (app, 1, blocks, c, f0 // GEMM_MR, -(-f1 // GEMM_MR), btp, c, ld,
                           s1 - s0, yp + 4 * (f0 * hw + s0), f1 - f0, hw, f1 - f0, sp, floats,
                           0))  # fmt: skip
        _ccall(fact, (yp + 4 * f0 * hw, f1 - f0, hw, bp + 4 * f0, code, lo, hi, acp))
        done += 1


# Jobs over a layer's channels (or rows), `per` at a time, claimed as in winograd_job; each
# thread passes its row of scratch to the kernel. One job per kernel, so that a network compiles
# only the kernels its layers use (one job for the three maxpool kernels compiled all three:
# yolov4-tiny's first-ever detect 12.8 -> 17.2 s).
@njit(cache=True, inline="always")
def _next_part(st, per, total):
    """The start of the next `per` of `total` claimed from job state st, or -1: none left."""
    c0 = job_claim(st) * per
    return c0 if c0 < total else -1


@njit(cache=True, nogil=True)
def maxpool_2x2_job(st, slot, per, flat, h, w, out, scratch):
    """maxpool_2x2_even: flat (c, h*w) -> out (c, h/2 * w/2)."""
    job_enter(st, slot)
    done, c0 = 0, _next_part(st, per, flat.shape[0])
    while c0 >= 0:
        maxpool_2x2_even(flat[c0 : c0 + per], h, w, out[c0 : c0 + per], scratch[slot])
        done, c0 = done + 1, _next_part(st, per, flat.shape[0])
    return done


@njit(cache=True, nogil=True)
def maxpool_small_job(st, slot, per, flat, h, w, size, pad, out, scratch):
    """maxpool_small: flat (c, h*w) -> out (c, out_h, out_w)."""
    job_enter(st, slot)
    done, c0 = 0, _next_part(st, per, flat.shape[0])
    while c0 >= 0:
        maxpool_small(flat[c0 : c0 + per], h, w, size, pad, out[c0 : c0 + per], scratch[slot])
        done, c0 = done + 1, _next_part(st, per, flat.shape[0])
    return done


@njit(cache=True, nogil=True)
def maxpool_job(st, slot, per, x, size, stride_y, stride_x, pad, out, scratch):
    """maxpool: x (c, h, w) -> out (c, out_h, out_w)."""
    job_enter(st, slot)
    done, c0 = 0, _next_part(st, per, x.shape[0])
    while c0 >= 0:
        part = out[c0 : c0 + per]
        maxpool(x[c0 : c0 + per], size, stride_y, stride_x, pad, part, scratch[slot])
        done, c0 = done + 1, _next_part(st, per, x.shape[0])
    return done


@njit(cache=True, nogil=True)
def add_job(st, slot, per, a, b, out):
    """out = a + b, (c, n) arrays: a [shortcut] of one input of the same shape, unweighted
    (blas.c shortcut_multilayer_cpu: out = in, then out += from)."""
    job_enter(st, slot)
    done, r0 = 0, _next_part(st, per, out.shape[0])
    while r0 >= 0:
        for r in range(r0, min(out.shape[0], r0 + per)):
            ar, br, o = a[r], b[r], out[r]
            for j in range(out.shape[1]):
                o[j] = ar[j] + br[j]
        done, r0 = done + 1, _next_part(st, per, out.shape[0])
    return done


@njit(cache=True, nogil=True)
def upsample_job(st, slot, per, x, stride, scale, out):
    """upsample over x's channels."""
    job_enter(st, slot)
    done, c0 = 0, _next_part(st, per, x.shape[0])
    while c0 >= 0:
        upsample(x[c0 : c0 + per], stride, scale, out[c0 : c0 + per])
        done, c0 = done + 1, _next_part(st, per, x.shape[0])
    return done


# --- image input ---
@njit(cache=True, nogil=True, error_model="numpy")
def resize_bgr(img, out, ix, dx, iy, dy, need, part, unit):
    """BGR uint8 (H, W, 3) -> RGB float32 out (3, h, w), x / 255.0f, resized as darknet does:
    image_opencv.cpp mat_to_image, then image.c resize_image (first along x into a part image,
    then along y; scale (in-1)/(out-1); the last column copies the last input column and the
    last row has no second term). Every step float32 in the C code's order, so the result is
    bit for bit image.resize_image(image.to_planar_rgb(img)) (tested against the C loops'
    port), with no float copy of the whole image: only the part rows the y pass reads are made,
    from the pixels their taps read. `out` may be a view into a letterbox canvas. Scratch
    (image.resize_bgr makes it): ix int64 and dx float32 of w values, iy int64 and dy float32
    of h, need bool of H, part float32 (3, H, w); unit: float32 (256,), v / 255.0f for each
    byte v (the x pass's loads are gathers, so it runs scalar: a lookup instead of a division
    halves it).
    """
    ih, iw = img.shape[0], img.shape[1]
    h, w = out.shape[1], out.shape[2]
    w_scale = _F(iw - 1) / _F(w - 1) if w > 1 else _F(0.0)
    for c in range(w):
        if c == w - 1 or iw == 1:
            ix[c], dx[c] = -1, _F(0.0)  # a copy of the last input column
        else:
            sx = _F(c) * w_scale
            ix[c] = int(sx)
            dx[c] = sx - _F(ix[c])
    h_scale = _F(ih - 1) / _F(h - 1) if h > 1 else _F(0.0)
    for q in range(ih):
        need[q] = False
    for r in range(h):
        sy = _F(r) * h_scale
        iy[r] = int(sy)
        dy[r] = sy - _F(iy[r])
        need[iy[r]] = True
        if r < h - 1 and ih > 1:
            need[iy[r] + 1] = True
    for q in range(ih):
        if not need[q]:
            continue
        row = img[q]
        for k in range(3):
            ch = 2 - k  # RGB from BGR
            dst = part[k, q]
            for c in range(w):
                j = ix[c]
                if j < 0:
                    dst[c] = unit[row[iw - 1, ch]]
                else:
                    d = dx[c]
                    dst[c] = (_F(1.0) - d) * unit[row[j, ch]] + d * unit[row[j + 1, ch]]
    for k in range(3):
        for r in range(h):
            d = dy[r]
            top, dst = part[k, iy[r]], out[k, r]
            if r < h - 1 and ih > 1:
                bottom = part[k, iy[r] + 1]
                for c in range(w):
                    dst[c] = (_F(1.0) - d) * top[c] + d * bottom[c]
            else:
                for c in range(w):
                    dst[c] = (_F(1.0) - d) * top[c]


# --- NMS ---
@njit(cache=True, inline="always")
def _fmax(a, b):
    """C's fmax: the larger, or the one that is not NaN."""
    if b != b:
        return a
    if a != a:
        return b
    return a if a >= b else b


@njit(cache=True, inline="always")
def _fmin(a, b):
    if b != b:
        return a
    if a != a:
        return b
    return a if a <= b else b


@njit(cache=True, nogil=True, error_model="numpy")
def _diou_over(e, a, b, iou, t, exponent):
    """Whether box a suppresses box b by DIoU: iou - (d^2/c^2)**exponent > t (box.c box_diou,
    box_diounms; pow in double as C promotes it; c == 0: the IoU alone)."""
    cw = _fmax(e[1, a], e[1, b]) - _fmin(e[0, a], e[0, b])  # box_c: the enclosing box
    ch = _fmax(e[3, a], e[3, b]) - _fmin(e[2, a], e[2, b])
    c = cw * cw + ch * ch
    if c == 0:
        return iou > t
    dx, dy = e[5, a] - e[5, b], e[6, a] - e[6, b]
    d = dx * dx + dy * dy
    return iou - _F(math.pow(np.float64(d / c), exponent)) > t


@njit(cache=True, nogil=True, error_model="numpy")
def nms_class(e, p, t, diou, exponent, s):
    """Greedy suppression within one class, candidates in sorted order (box.c do_nms_sort and
    diounms_sort's inner loops): p (m,) their probs, zeroed in place where a box still kept
    earlier in the order overlaps by more than t; e (7, m) their edges left, right, top,
    bottom, area w*h, centre x, y (postprocess._edges). The overlap is box_iou, or with diou
    box_diou/box_diounms.

    For each kept box, the IoU with every later box in one branch-free (vectorized) loop, then
    DIoU only where the IoU is over t: its penalty is >= 0 (or NaN), so below that it cannot
    suppress. float32 in box.c's order of operations: the same zeros as the Darknet port in
    tests/reference.py (tested). s: float32 scratch of m values (the IoUs of box a with the
    boxes after it).
    """
    m = p.shape[0]
    zero = _F(0.0)
    for a in range(m - 1):
        if p[a] == 0:  # suppressed: suppresses nothing
            continue
        a0, a1, a2, a3, a4 = e[0, a], e[1, a], e[2, a], e[3, a], e[4, a]
        e0, e1, e2, e3, e4 = e[0, a + 1 :], e[1, a + 1 :], e[2, a + 1 :], e[3, a + 1 :], e[4, a + 1 :]
        for j in range(m - a - 1):
            b0, b1, b2, b3 = e0[j], e1[j], e2[j], e3[j]
            left = a0 if a0 > b0 else b0
            right = a1 if a1 < b1 else b1
            top = a2 if a2 > b2 else b2
            bottom = a3 if a3 < b3 else b3
            w, h = right - left, bottom - top
            inter = zero if (w < 0) | (h < 0) else w * h
            union = a4 + e4[j] - inter
            s[j] = zero if (inter == 0) | (union == 0) else inter / union
        for j in range(m - a - 1):
            if s[j] > t and (not diou or _diou_over(e, a, a + 1 + j, s[j], t, exponent)):
                p[a + 1 + j] = 0


# --- zoo layers ---
# Kernels of the layers beyond the YOLOv3/v4 core (layers_more.py). Sums run in darknet's order,
# one float32 accumulator each, so results match the C loops bit for bit where C is sequential.


@njit(cache=True, nogil=True)
def normalize_channels(y, mode, i0, i1):
    """Cross-channel activation of pixels i0..i1 of a (c, hw) map in place (activations.c).

    mode 0: normalize_channels (positive parts over their sum), 1: normalize_channels_softmax
    (max taken as 0), 2: normalize_channels_softmax_maxval. eps .0001 starts every sum.
    """
    c = y.shape[0]
    for i in range(i0, i1):
        s = _F(0.0001)
        if mode == 0:
            for k in range(c):
                if y[k, i] > 0:
                    s += y[k, i]
            for k in range(c):
                v = y[k, i]
                y[k, i] = v / s if v > 0 else _F(0.0)
        else:
            mx = _F(0.0)
            if mode == 2:
                mx = y[0, i]
                for k in range(1, c):
                    if y[k, i] > mx:
                        mx = y[k, i]
            for k in range(c):
                s += np.exp(y[k, i] - mx)
            for k in range(c):
                y[k, i] = np.exp(y[k, i] - mx) / s


@njit(cache=True, nogil=True)
def blur(x, size, stride_y, stride_x, pad, out):
    """Antialiasing blur: darknet's fixed depthwise conv, [1 2 1]x[1 2 1]/16 or 2x2 of 1/4.

    x (c, h, w) -> out (c, out_h, out_w); zero outside the image (convolutional_layer.c
    make_convolutional_layer, the `antialiasing` input_layer). Taps sum in kernel order.
    """
    c, h, w = x.shape
    _, out_h, out_w = out.shape
    for k in range(c):
        for oy in range(out_h):
            for ox in range(out_w):
                acc = _F(0.0)
                for ky in range(size):
                    iy = oy * stride_y - pad + ky
                    for kx in range(size):
                        ix = ox * stride_x - pad + kx
                        if size == 2:
                            wt = _F(0.25)
                        else:
                            wt = _F((1 + (ky == 1)) * (1 + (kx == 1))) / _F(16.0)
                        if 0 <= iy < h and 0 <= ix < w:
                            acc += wt * x[k, iy, ix]
                out[k, oy, ox] = acc


@njit(cache=True, nogil=True)
def avgpool_global(x, out):
    """x (c, h*w) -> out (c,): a sequential float sum, then / (h*w) (avgpool_layer.c).

    Each channel's sum is one chain of dependent adds (darknet's order, kept exactly), so 8
    channels run side by side: 8 independent chains instead of one at a time (~5x faster)."""
    c, hw = x.shape
    for g in range((c + 7) // 8):
        k0 = 8 * g
        if k0 + 8 <= c:
            r0, r1, r2, r3 = x[k0], x[k0 + 1], x[k0 + 2], x[k0 + 3]
            r4, r5, r6, r7 = x[k0 + 4], x[k0 + 5], x[k0 + 6], x[k0 + 7]
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = _F(0.0)
            for i in range(hw):
                a0 += r0[i]
                a1 += r1[i]
                a2 += r2[i]
                a3 += r3[i]
                a4 += r4[i]
                a5 += r5[i]
                a6 += r6[i]
                a7 += r7[i]
            n = _F(hw)
            out[k0], out[k0 + 1], out[k0 + 2], out[k0 + 3] = a0 / n, a1 / n, a2 / n, a3 / n
            out[k0 + 4], out[k0 + 5], out[k0 + 6], out[k0 + 7] = a4 / n, a5 / n, a6 / n, a7 / n
        else:
            for k in range(k0, c):
                acc = _F(0.0)
                for i in range(hw):
                    acc += x[k, i]
                out[k] = acc / _F(hw)


@njit(cache=True, nogil=True)
def local_avgpool(x, size, stride_y, stride_x, pad, out):
    """x (c, h, w) -> out (c, out_h, out_w): mean of the taps inside the image, origin -pad//2.

    maxpool_layer.c forward_local_avgpool_layer: `avg / counter` over valid taps only.
    """
    c, h, w = x.shape
    _, out_h, out_w = out.shape
    off = -(pad // 2)
    for k in range(c):
        for oy in range(out_h):
            for ox in range(out_w):
                acc = _F(0.0)
                count = 0
                for n in range(size):
                    iy = off + oy * stride_y + n
                    for m in range(size):
                        ix = off + ox * stride_x + m
                        if 0 <= iy < h and 0 <= ix < w:
                            acc += x[k, iy, ix]
                            count += 1
                out[k, oy, ox] = acc / _F(count)  # count 0 gives NaN, as in C


@njit(cache=True)
def softmax_groups(x, temp, out):
    """Softmax of each row of x (groups, n) with temperature (blas.c softmax).

    e = exp(x/temp - largest/temp) in double, stored as float; a sequential float sum.
    """
    groups, n = x.shape
    for g in range(groups):
        largest = _F(-3.4028234663852886e38)
        for i in range(n):
            if x[g, i] > largest:
                largest = x[g, i]
        total = _F(0.0)
        for i in range(n):
            e = _F(math.exp(np.float64(x[g, i] / temp - largest / temp)))
            total += e
            out[g, i] = e
        for i in range(n):
            out[g, i] = out[g, i] / total


@njit(cache=True, nogil=True)
def downsample_sum(x, stride, scale, out):
    """Negative-stride [upsample]: out[k, j//s, i//s] += scale * x[k, j, i] (blas.c upsample_cpu
    with forward=0), rows then columns, over the out_h*s x out_w*s top-left part of x."""
    c = x.shape[0]
    _, out_h, out_w = out.shape
    for k in range(c):
        for oy in range(out_h):
            for ox in range(out_w):
                out[k, oy, ox] = _F(0.0)
        for j in range(out_h * stride):
            for i in range(out_w * stride):
                out[k, j // stride, i // stride] += scale * x[k, j, i]
