"""Every Numba kernel of pydarknet, and nothing else.

Kernels take float32 C-contiguous arrays and write a preallocated `out`; callers validate
shapes once (layers.py), so there is no assert or raise in here. Twins: tests/reference.py.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

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


@njit(cache=True, parallel=True)
def bias_activate(y, bias, code):
    """y[c, :] = act(y[c, :] + bias[c]) in place; y is (n, h*w) (convolutional_layer.c)."""
    n, hw = y.shape
    for c in prange(n):
        b = bias[c]
        for i in range(hw):
            y[c, i] = _activate(y[c, i] + b, code)


@njit(cache=True, parallel=True)
def activate(y, code):
    """y = act(y) in place over a (rows, cols) array (blas.c activate_array)."""
    rows, cols = y.shape
    for r in prange(rows):
        for i in range(cols):
            y[r, i] = _activate(y[r, i], code)


@njit(cache=True, parallel=True)
def im2col(x, size, stride_y, stride_x, pad, dilation, out_h, out_w, out):
    """x (c, h, w) -> out (c*size*size, out_h*out_w); zero outside the image (im2col.c)."""
    c, h, w = x.shape
    for row in prange(c * size * size):
        ch = row // (size * size)
        ky = (row // size) % size
        kx = row % size
        for oy in range(out_h):
            iy = oy * stride_y - pad + ky * dilation
            base = oy * out_w
            if iy < 0 or iy >= h:
                for ox in range(out_w):
                    out[row, base + ox] = 0.0
                continue
            for ox in range(out_w):
                ix = ox * stride_x - pad + kx * dilation
                out[row, base + ox] = x[ch, iy, ix] if 0 <= ix < w else _F(0.0)


@njit(cache=True, parallel=True)
def maxpool(x, size, stride_y, stride_x, pad, out):
    """x (c, h, w) -> out (c, out_h, out_w); window origin -pad//2, outside taps never win.

    darknet forward_maxpool_layer pads with -FLT_MAX and `pad` is the total padding.
    """
    c, h, w = x.shape
    _, out_h, out_w = out.shape
    off = -(pad // 2)
    for k in prange(c):
        for oy in range(out_h):
            for ox in range(out_w):
                best = -np.inf
                for n in range(size):
                    iy = off + oy * stride_y + n
                    if iy < 0 or iy >= h:
                        continue
                    for m in range(size):
                        ix = off + ox * stride_x + m
                        if 0 <= ix < w:
                            v = x[k, iy, ix]
                            if v > best:
                                best = v
                # darknet's -FLT_MAX when no tap is inside (only with pathological padding)
                out[k, oy, ox] = best if best > -np.inf else _F(-3.4028234663852886e38)


@njit(cache=True, parallel=True)
def upsample(x, stride, scale, out):
    """Nearest neighbour: out[k, y, x] = in[k, y//stride, x//stride] * scale (blas.c upsample_cpu)."""
    c, h, w = x.shape
    for k in prange(c):
        for oy in range(h * stride):
            iy = oy // stride
            for ox in range(w * stride):
                out[k, oy, ox] = x[k, iy, ox // stride] * scale
