"""The kernels at the top of pydarknet/kernels.py against their twins in tests/reference.py, the
convolution paths (im2col, direct 1x1, Winograd; row and filter steps), the memory plan, pruned
heads, the thread pool and the cache location. No timing here: `pydarknet bench` measures."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

import pydarknet
from pydarknet import gemm, image, kernels, threads
from pydarknet.layers import ACTIVATIONS, _phase_rows, _phase_weights, act_scratch, aligned_empty

from . import reference
from .conftest import CFG

_F = np.float32
ROOT = Path(__file__).resolve().parents[1]


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(_F)


def test_only_kernels_py_has_njit():
    # Numba caches by file: a kernel elsewhere would not see its callees' edits (STYLE.md)
    offenders = [p.name for p in (ROOT / "pydarknet").rglob("*.py")
                 if p.name != "kernels.py" and "@njit" in p.read_text()]  # fmt: skip
    assert offenders == []


# -- im2col ---------------------------------------------------------------------------------
IM2COL = [
    (c, h, w, size, stride, pad, dil)
    for c, (h, w), size, stride, pad, dil in itertools.product(
        (1, 3), ((1, 1), (2, 3), (5, 5), (6, 7)), (1, 2, 3, 5), (1, 2), (0, 1), (1, 2)
    )
    if (h + 2 * pad - dil * (size - 1) - 1) >= 0 and (w + 2 * pad - dil * (size - 1) - 1) >= 0
]


@pytest.mark.parametrize("c,h,w,size,stride,pad,dil", IM2COL)
def test_im2col_matches_twin(c, h, w, size, stride, pad, dil):
    x = rand((c, h, w))
    span = dil * (size - 1) + 1
    oh, ow = (h + 2 * pad - span) // stride + 1, (w + 2 * pad - span) // stride + 1
    want = reference.im2col(x, size, stride, stride, pad, dil, oh, ow)
    out = np.full(want.shape, np.nan, _F)
    kernels.im2col(x.reshape(c, h * w), h, w, size, stride, stride, pad, dil, oh, ow, out)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, want)
    for oy0, oy1 in ((0, 1), (oh - 1, oh), (oh // 2, oh)):  # row ranges, as conv steps use
        part = np.full((want.shape[0], (oy1 - oy0) * ow), np.nan, _F)
        kernels.im2col_rows(x.reshape(c, h * w), h, w, size, stride, stride, pad, dil, oy0, oy1,
                            ow, part)  # fmt: skip
        np.testing.assert_array_equal(part, want[:, oy0 * ow : oy1 * ow])


def test_im2col_stride_x_differs_from_stride_y():
    x = rand((2, 7, 6))
    want = reference.im2col(x, 3, 2, 1, 1, 1, 4, 6)
    out = np.empty_like(want)
    kernels.im2col(x.reshape(2, 42), 7, 6, 3, 2, 1, 1, 1, 4, 6, out)
    np.testing.assert_array_equal(out, want)


# -- maxpool and upsample -------------------------------------------------------------------
@pytest.mark.parametrize(
    "h,w,size,stride,pad",
    [(h, w, size, stride, pad)
     for (h, w), size, stride, pad in itertools.product(
         ((1, 1), (2, 3), (5, 5), (13, 13), (6, 7)), (1, 2, 3, 5, 13), (1, 2), (0, 1, None))
     if (h + (size - 1 if pad is None else pad) - size) >= 0
     and (w + (size - 1 if pad is None else pad) - size) >= 0],  # fmt: skip
)
def test_maxpool_matches_twin(h, w, size, stride, pad):
    pad = size - 1 if pad is None else pad  # parser.c default: padding = size - 1
    x = rand((3, h, w), seed=h * w + size)
    x[0, 0, 0] = np.nan  # never wins, as `val > max` in C
    x[1, -1, -1] = -np.inf
    x[2] = -np.inf  # all -inf: darknet's -FLT_MAX start value stays
    want = reference.maxpool(x, size, stride, stride, pad)
    out = np.empty_like(want)
    kernels.maxpool(x, size, stride, stride, pad, out, np.full(w, np.nan, _F))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("h,w", [(2, 2), (4, 6), (26, 26), (10, 1000), (2, 9000), (52, 8)])
@pytest.mark.parametrize("pad", [0, 1])
def test_maxpool_2x2_even_matches_twin_bit_for_bit(h, w, pad):
    """The two-pass 2x2/2 pool of even maps (rows in blocks of POOL_PAIRS pairs: (10, 1000)
    is 4 + 1 output rows, (2, 9000) one output row wider than that) against darknet's loop:
    NaN never wins, all -inf leaves -FLT_MAX, and of equal taps (0.0 and -0.0) the first in
    darknet's order stays, checked on the bits."""
    x = rand((4, h, w), seed=h * w + pad)
    x[0, 0, 0] = x[0, h // 2, w // 2] = np.nan
    x[1, -1, -1] = -np.inf
    x[2] = -np.inf
    signs = np.random.default_rng(h + w).integers(0, 2, size=(h, w)).astype(bool)
    x[3] = np.where(signs, _F(0.0), _F(-0.0))  # ties: which zero wins shows the order
    want = reference.maxpool(x, 2, 2, 2, pad)
    out = np.full(want.shape, np.nan, _F)
    pairs = np.full(kernels.pool_pairs(h, w), np.nan, _F)
    kernels.maxpool_2x2_even(x.reshape(4, h * w), h, w, out.reshape(4, -1), pairs)
    np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize(
    "h,w,size,pad",
    [(h, w, size, pad)
     for h, w in ((1, 1), (2, 3), (5, 5), (8, 8), (13, 13), (6, 7), (19, 11))
     for size, pad in ((1, 0), (3, 2), (5, 4), (9, 8), (13, 12), (4, 3), (3, 0), (5, 1))
     if h + pad - size >= 0 and w + pad - size >= 0],  # fmt: skip
)
def test_maxpool_small_matches_twin(h, w, size, pad):
    out_h, out_w = h + pad - size + 1, w + pad - size + 1
    x = rand((3, h, w), seed=h * w + size)
    x[0, 0, 0] = x[0, h // 2, w // 2] = np.nan  # never wins, as `val > max` in C
    x[1, -1, -1] = -np.inf
    x[2] = -np.inf  # all -inf: darknet's -FLT_MAX start value stays
    out = np.full((3, out_h, out_w), np.nan, _F)
    scratch = np.full(2 * out_h * w + out_w * out_h, np.nan, _F)
    kernels.maxpool_small(x.reshape(3, h * w), h, w, size, pad, out, scratch)
    np.testing.assert_array_equal(out, reference.maxpool(x, size, 1, 1, pad))


@pytest.mark.parametrize("h,w", [(1, 1), (2, 3), (5, 5), (8, 8), (13, 13), (6, 7)])
@pytest.mark.parametrize("first,then", [(5, 5), (9, 5), (3, 3), (5, 9), (1, 7)])
def test_a_centred_pool_of_a_centred_pool_is_the_larger_one(h, w, first, then):
    """What MaxPool.pool_again relies on (SPP's 9 = 5 then 5, 13 = 9 then 5): stride 1,
    windows centred by darknet's default padding; NaN, -inf and the borders included."""
    x = rand((3, h, w), seed=h * w + first)
    x[0, 0, 0] = x[0, h // 2, w // 2] = np.nan
    x[1, -1, -1] = -np.inf
    x[2] = -np.inf
    mid, got = np.empty_like(x), np.empty_like(x)
    kernels.maxpool(x, first, 1, 1, first - 1, mid, np.empty(w, _F))
    kernels.maxpool(mid, then, 1, 1, then - 1, got, np.empty(w, _F))
    size = first + then - 1
    np.testing.assert_array_equal(got, reference.maxpool(x, size, 1, 1, size - 1))


@pytest.mark.parametrize("h,w,stride,scale", [(1, 1, 2, 1.0), (3, 5, 2, 1.0), (2, 3, 3, 0.5)])
def test_upsample_matches_twin(h, w, stride, scale):
    x = rand((2, h, w))
    out = np.empty((2, h * stride, w * stride), _F)
    kernels.upsample(x, stride, _F(scale), out)
    np.testing.assert_array_equal(out, reference.upsample(x, stride, scale))


# -- activations ----------------------------------------------------------------------------
SWEEP = np.concatenate([np.linspace(-100, 100, 20001, dtype=_F), rand(3000) * 5,
                        _F([0, -0.0, 20, -20, 20.5, -20.5, 87, -87, 88.7, -88.7, 1e-30, -1e-30,
                            3.4e38, -3.4e38])])  # fmt: skip


@pytest.mark.parametrize("name", ["mish", "logistic", "swish"])
def test_vectorized_exp_activations_are_within_2e6(name):
    # The kernels compute exp with a polynomial (Cephes expf) so the loop vectorizes; darknet's
    # expf is also within an ulp or two of exact. 2e-6 relative + 1e-30 absolute covers both.
    y = SWEEP.reshape(1, -1).copy()
    kernels.activate(y, ACTIVATIONS[name], *act_scratch())
    want = reference.activation64(SWEEP, name)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    np.testing.assert_allclose(y[0], want, rtol=2e-6, atol=1e-30)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("lo,hi", [(0, 2500), (3, 1029), (1024, 2049), (7, 7)])
def test_bias_activate_touches_only_its_columns(name, lo, hi):
    y = rand((3, 2500)) * 4
    bias = _F([0.5, -1.0, 0.0])
    got = y.copy()
    kernels.bias_activate(got, bias, ACTIVATIONS[name], lo, hi, *act_scratch())
    want = y.copy()
    part = want[:, lo:hi] + bias[:, None]
    kernels.activate(part, ACTIVATIONS[name], *act_scratch())  # the activation itself: see test_layers.py
    want[:, lo:hi] = part
    np.testing.assert_array_equal(got, want)


def test_leaky_and_linear_bias_activate_are_exact():
    y = rand((4, 1000))
    bias = rand(4, seed=1)
    got = y.copy()
    kernels.bias_activate(got, bias, kernels.LEAKY, 0, 1000, *act_scratch())
    t = y + bias[:, None]
    np.testing.assert_array_equal(got, np.where(t > 0, t, _F(0.1) * t))


# -- convolution paths ----------------------------------------------------------------------
def _conv_net(tmp_path, c, h, w, filters, size, stride, pad, act="leaky", seed=0, padding=None):
    """One [convolutional] with random weights; `padding` (the total padding) in place of pad."""
    cfg = tmp_path / f"conv{c}x{h}x{w}-{filters}-{size}-{stride}-{pad}-{padding}.cfg"
    edge = f"pad={pad}" if padding is None else f"padding={padding}"
    cfg.write_text(f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n\n[convolutional]\n"
                   f"batch_normalize=1\nfilters={filters}\nsize={size}\nstride={stride}\n"
                   f"{edge}\nactivation={act}\n")  # fmt: skip
    net = pydarknet.Network(cfg)
    net.save_random_weights(tmp_path / (cfg.stem + ".weights"), seed)
    return net


def _twin(net, x):
    layer = net.layers[0]
    w = layer.weights.reshape(layer.filters, layer.c, layer.size, layer.size)
    pad = layer.padding
    y = reference.conv2d(x[0], w, layer.biases, layer.stride_x, pad)
    return np.where(y > 0, y, 0.1 * y)


@pytest.mark.parametrize("threads_n", [1, 2])
@pytest.mark.parametrize(
    "c,h,w,filters,size,stride,pad",
    [(64, 1, 1, 5, 3, 1, 1), (64, 2, 3, 64, 3, 1, 1), (64, 5, 5, 64, 3, 1, 0),
     (64, 13, 13, 80, 3, 1, 1), (65, 9, 14, 7, 3, 1, 1), (64, 40, 40, 8, 3, 1, 1),  # Winograd
     (3, 11, 13, 16, 3, 2, 1), (8, 6, 7, 5, 5, 1, 1), (4, 5, 5, 6, 2, 1, 0),  # im2col
     (16, 7, 9, 70, 1, 1, 0), (16, 40, 41, 70, 1, 1, 0), (3, 2, 3, 4, 1, 2, 0)],  # 1x1
)  # fmt: skip
def test_convolution_matches_direct_twin(tmp_path, c, h, w, filters, size, stride, pad,
                                         threads_n):  # fmt: skip
    before = threads.num_threads()
    threads.set_num_threads(threads_n)
    try:
        net = _conv_net(tmp_path, c, h, w, filters, size, stride, pad)
        x = np.random.default_rng(3).random((1, c, h, w), dtype=_F)
        (got,) = net.forward(x)
    finally:
        threads.set_num_threads(before)
    want = _twin(net, x)
    assert got.dtype == np.float32 and got.shape[1:] == want.shape
    # float32 sums in another order (and Winograd's transforms): 1e-5 of the output's scale
    assert np.abs(got[0] - want).max() <= 1e-5 * max(np.abs(want).max(), 1.0)


@pytest.mark.parametrize("threads_n", [1, 2])
@pytest.mark.parametrize(
    "c,mult,h,w,size,stride,padding,dilation",
    [(8, 1, 13, 17, 3, 1, 1, 1), (8, 1, 13, 17, 3, 2, 1, 1), (6, 2, 12, 9, 5, 1, 2, 1),
     (5, 1, 11, 14, 5, 2, 2, 1), (4, 3, 9, 9, 3, 3, 0, 1), (7, 1, 10, 12, 3, 1, 2, 2),
     (3, 1, 5, 4, 7, 1, 3, 1), (16, 1, 2, 3, 3, 1, 1, 1), (4, 2, 6, 7, 1, 1, 0, 1)],
)  # fmt: skip
def test_depthwise_matches_a_direct_twin_per_group(tmp_path, threads_n, c, mult, h, w, size,
                                                   stride, padding, dilation):  # fmt: skip
    """groups = channels (MobileNet/EfficientNet): kernels.depthwise against each group's own
    direct convolution, for the unrolled 3x3 and 5x5 paths and the tap-by-tap one."""
    cfg = tmp_path / "dw.cfg"
    cfg.write_text(f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n\n[convolutional]\n"
                   f"batch_normalize=1\nfilters={c * mult}\ngroups={c}\nsize={size}\n"
                   f"stride={stride}\ndilation={dilation}\nactivation=linear\n"
                   + ("pad=1\n" if dilation > 1 else f"padding={padding}\n"))  # fmt: skip
    net = pydarknet.Network(cfg)
    net.save_random_weights(tmp_path / "dw.weights")
    layer = net.layers[0]
    assert layer.depthwise
    x = rand((2, c, h, w), seed=size * 10 + stride)
    before = threads.num_threads()
    threads.set_num_threads(threads_n)
    try:
        (got,) = net.forward(x)
    finally:
        threads.set_num_threads(before)
    kernel = layer.weights.reshape(c * mult, 1, size, size)
    for b in range(2):
        want = np.concatenate([reference.conv2d(x[b, j : j + 1], kernel[j * mult : (j + 1) * mult],
                                                layer.biases[j * mult : (j + 1) * mult], stride,
                                                layer.padding, dilation) for j in range(c)])  # fmt: skip
        assert got[b].shape == want.shape
        assert np.abs(got[b] - want).max() <= 1e-5 * max(np.abs(want).max(), 1.0)


def test_winograd_agrees_with_im2col(tmp_path, monkeypatch):
    net = _conv_net(tmp_path, 64, 26, 27, 96, 3, 1, 1)
    assert net.layers[0].winograd
    x = np.random.default_rng(5).random((2, 64, 26, 27), dtype=_F)
    (fast,) = net.forward(x)
    monkeypatch.setattr(type(net.layers[0]), "winograd", property(lambda self: False))
    net._plans.clear()
    (plain,) = net.forward(x)
    assert np.abs(fast - plain).max() <= 1e-5 * np.abs(plain).max()


def test_network_without_winograd_matches(tmp_path):
    """Network.winograd = False: im2col on every 3x3 layer (stride 1 and 2), no transformed
    weights made, the same outputs within float rounding."""
    cfg = tmp_path / "two.cfg"
    cfg.write_text("[net]\nwidth=40\nheight=40\nchannels=16\n\n[convolutional]\nfilters=64\n"
                   "size=3\nstride=1\npad=1\nactivation=leaky\n\n[convolutional]\nfilters=8\n"
                   "size=3\nstride=2\npad=1\nactivation=mish\n")  # fmt: skip
    weights = pydarknet.Network(cfg).save_random_weights(tmp_path / "two.weights")
    fast, plain = pydarknet.load(cfg, weights), pydarknet.load(cfg, weights, winograd=False)
    assert plain.kernel_key(40, 40) != fast.kernel_key(40, 40)  # their own preload lists
    x = rand((1, 16, 40, 40), seed=9)
    (want,), (got,) = fast.forward(x), plain.forward(x)
    assert [fast.layers[i]._winograd_u is not None for i in (0, 1)] == [True, True]
    assert [getattr(plain.layers[i], "_winograd_u", None) for i in (0, 1)] == [None, None]
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    plain.winograd = True  # switched on later: a new plan, then the transforms
    (again,) = plain.forward(x)
    np.testing.assert_array_equal(again, want)


# -- Winograd transforms against their matrix twins ------------------------------------------
_WINOGRAD = {2: (kernels.winograd_input, kernels.winograd_output),
             4: (kernels.winograd4_input, kernels.winograd4_output),
             "s2": (kernels.winograd_s2_input, kernels.winograd_s2_output)}  # fmt: skip
_SIDES = {2: (2, 4, 1), 4: (4, 6, 1), "s2": (2, 5, 2)}  # output tile, input tile, stride


@pytest.mark.parametrize("m", [2, 4, "s2"])
@pytest.mark.parametrize("c,h,w,pad,ty0,ty1", [(3, 9, 11, 1, 0, 3), (2, 8, 8, 0, 0, 2),
                                               (2, 1, 1, 1, 0, 1), (3, 13, 7, 1, 1, 3),
                                               (1, 26, 27, 1, 2, 7), (2, 5, 4, 2, 0, 2)])  # fmt: skip
def test_winograd_input_transform_matches_matrix_twin(m, c, h, w, pad, ty0, ty1):
    tile, a, stride = _SIDES[m]
    out_w = (w + 2 * pad - 3) // stride + 1
    tw = -(-out_w // tile)
    x = rand((c, h, w), seed=h * w)
    got = np.full((a * a, c + 2, (ty1 - ty0) * tw), np.nan, _F)  # element-major, 2 more channels
    _WINOGRAD[m][0](x, pad, ty0, ty1, tw, 1, c, got)  # channels 1.. here, 0 below, as two steps
    _WINOGRAD[m][0](x, pad, ty0, ty1, tw, 0, 1, got)
    want = reference.winograd_input(x, pad, ty0, ty1, tw, m)
    np.testing.assert_allclose(got[:, :c].transpose(1, 0, 2), want, rtol=1e-5,
                               atol=1e-5 * np.abs(want).max())  # fmt: skip
    assert np.isnan(got[:, c:]).all()  # nothing written outside its channels


_BT6 = getattr(kernels._bt6, "py_func", kernels._bt6)  # the scalar functions, not compiled
_AT6 = getattr(kernels._at6, "py_func", kernels._at6)


def _bt_in_order(bt, xp, side, step, gap, th, tw):
    """B^T d B of every tile d (side x side samples `gap` apart, tiles `step` apart from xp's
    origin) as the kernels order it, bt (the scalar function) down the columns, then across,
    in numpy's float32: (side, side, c, th, tw)."""
    d = [[xp[:, gap * r : gap * r + step * th : step, gap * s : gap * s + step * tw : step]
          for s in range(side)] for r in range(side)]  # fmt: skip
    down = bt(*(np.stack(d[r]) for r in range(side)))  # [i][s]
    return np.stack([np.stack(bt(*down[i])) for i in range(side)])


def _at_in_order(at, m, side, tile, th, tw):
    """A^T M A of every tile of m (side^2, f, th * tw) as the kernels order it, at down the
    tiles' columns, then across, in numpy's float32: (f, tile * th, tile * tw)."""
    f = m.shape[1]
    half = [at(*(m[side * i + j] for i in range(side))) for j in range(side)]  # [j][a]
    y = np.stack([np.stack(at(*(half[j][a] for j in range(side)))) for a in range(tile)])
    return y.reshape(tile, tile, f, th, tw).transpose(2, 3, 0, 4, 1).reshape(f, tile * th,
                                                                              tile * tw)  # fmt: skip


@pytest.mark.parametrize("k", [1, 2, 4, 8])
@pytest.mark.parametrize("w,n,pad", [(1, 2, 1), (13, 5, 1), (26, 8, 1), (26, 9, 2), (61, 40, 0),
                                     (104, 27, 1), (3, 12, 5)])  # fmt: skip
def test_phase_plane_splits_rows_by_column_phase(k, w, n, pad):
    """kernels._phase_plane (a row copied between zeros, then split by k vector shuffles, runs of
    8 tiles and a last overlapping run, or value by value under 8): plane[r, p, t] = the padded
    row's column k t + p, rows above and below the image zero."""
    h, ch = 5, 1
    x = rand((2, h, w), seed=k * w)
    plane = np.full((h + 3, k, n), np.nan, _F)
    kernels._phase_plane(x, ch, pad, -1, plane, np.full(k * n, np.nan, _F))
    padded = np.zeros((h + 3, max(k * n, pad + w)), _F)
    padded[1 : h + 1, pad : pad + w] = x[ch]
    want = padded[:, : k * n].reshape(h + 3, n, k).transpose(0, 2, 1)
    np.testing.assert_array_equal(plane, want)


@pytest.mark.parametrize("h,w,pad", [(9, 1, 1), (10, 7, 0), (30, 31, 1), (33, 32, 0), (40, 105, 1),
                                     (12, 36, 1)])  # fmt: skip
def test_f4_transforms_are_bit_exact_in_the_scalar_order(h, w, pad):
    """F(4x4)'s transforms run _bt6 and _at6 on vectors of 8 tiles (kernels._lanewise), fewer
    than 8 and a last part of a row as well: every lane the scalar functions' operations in
    their order, so bit for bit those functions applied with numpy's float32 (rows of 1-27
    tiles; the column passes' rows of 4 * (tiles + 1))."""
    c, f = 3, 2
    out_h, out_w = h + 2 * pad - 2, w + 2 * pad - 2
    th, tw = -(-out_h // 4), -(-out_w // 4)
    x = rand((c, h, w), seed=w)
    xp = np.zeros((c, 4 * th + 2, 4 * tw + 2), _F)
    xp[:, pad : pad + h, pad : pad + w] = x
    want = _bt_in_order(_BT6, xp, 6, 4, 1, th, tw).reshape(36, c, th * tw)
    got = np.empty((36, c, th * tw), _F)
    kernels.winograd4_input(x, pad, 0, th, tw, 0, c, got)
    np.testing.assert_array_equal(got, want)

    m = rand((36, f, th * tw), seed=h)
    got = np.empty((f, out_h, out_w), _F)
    kernels.winograd4_output(m, 0, th, tw, 0, f, got)
    np.testing.assert_array_equal(got, _at_in_order(_AT6, m, 6, 4, th, tw)[:, :out_h, :out_w])


@pytest.mark.parametrize("h,w,pad", [(9, 1, 1), (10, 13, 0), (30, 61, 1), (33, 64, 0), (40, 105, 1),
                                     (12, 66, 1)])  # fmt: skip
def test_stride_2_transforms_are_bit_exact_in_the_scalar_order(h, w, pad):
    """Stride-2 F(2x2)'s transforms, vector code as in F(4x4)'s: bit for bit kernels._bt5 and
    _at5 applied with numpy's float32 (rows of 1-27 tiles)."""
    at5 = getattr(kernels._at5, "py_func", kernels._at5)
    c, f = 3, 2
    out_h, out_w = (h + 2 * pad - 3) // 2 + 1, (w + 2 * pad - 3) // 2 + 1
    th, tw = -(-out_h // 2), -(-out_w // 2)
    x = rand((c, h, w), seed=w)
    xp = np.zeros((c, 4 * th + 1 + h, 4 * tw + 1 + w), _F)
    xp[:, pad : pad + h, pad : pad + w] = x
    want = _bt_in_order(kernels._bt5, xp, 5, 4, 1, th, tw).reshape(25, c, th * tw)
    got = np.empty((25, c, th * tw), _F)
    kernels.winograd_s2_input(x, pad, 0, th, tw, 0, c, got)
    np.testing.assert_array_equal(got, want)

    m = rand((25, f, th * tw), seed=h)
    got = np.empty((f, out_h, out_w), _F)
    kernels.winograd_s2_output(m, 0, th, tw, 0, f, got)
    np.testing.assert_array_equal(got, _at_in_order(at5, m, 5, 2, th, tw)[:, :out_h, :out_w])


@pytest.mark.parametrize("h,w,pad", [(9, 1, 1), (10, 13, 0), (30, 61, 1), (33, 64, 0), (40, 105, 1),
                                     (12, 66, 2), (70, 140, 3)])  # fmt: skip
def test_stride_2_f4_transforms_are_bit_exact_in_the_scalar_order(h, w, pad):
    """F(4x4, 2x2) over the input's four phases: bit for bit kernels._bt5f and _at5f applied
    with numpy's float32 to each phase's 5x5 tiles (rows of 1-18 tiles), phase channel
    4 ch + 2 py + px."""
    c, f = 3, 2
    out_h, out_w = (h + 2 * pad - 3) // 2 + 1, (w + 2 * pad - 3) // 2 + 1
    th, tw = -(-out_h // 4), -(-out_w // 4)
    a0 = (-pad) // 2
    x = rand((c, h, w), seed=w)
    xp = np.zeros((c, 8 * th + 10 + h, 8 * tw + 10 + w), _F)  # input row/column -2 a0 at 0
    xp[:, -2 * a0 : -2 * a0 + h, -2 * a0 : -2 * a0 + w] = x
    want = np.empty((25, c, 2, 2, th * tw), _F)
    for py in range(2):
        for px in range(2):
            tiles = _bt_in_order(kernels._bt5f, xp[:, py:, px:], 5, 8, 2, th, tw)
            want[:, :, py, px] = tiles.reshape(25, c, th * tw)
    got = np.empty((25, 4 * c, th * tw), _F)
    in_order = np.zeros((25, 4, 2), np.int64)
    in_order[..., 0], in_order[..., 1] = 4, np.arange(4)  # phase channel 4 ch + 2 py + px
    kernels.winograd_s2f4_input(x, pad, 0, th, tw, 0, c, got, in_order)
    np.testing.assert_array_equal(got, want.reshape(25, 4 * c, th * tw))
    # the layers' order (_phase_rows): the same values, each in its row
    rows_of, depths = _phase_rows(pad, c)
    kernels.winograd_s2f4_input(x, pad, 0, th, tw, 0, c, got, rows_of)
    for e in range(25):
        for p in range(4):
            rows = np.arange(c) * rows_of[e, p, 0] + rows_of[e, p, 1]
            np.testing.assert_array_equal(got[e, rows], want.reshape(25, c, 4, -1)[e, :, p])

    m = rand((25, f, th * tw), seed=h)
    got = np.empty((f, out_h, out_w), _F)
    kernels.winograd_s2f4_output(m, 0, th, tw, 0, f, got)
    want = _at_in_order(kernels._at5f, m, 5, 4, th, tw)
    np.testing.assert_array_equal(got, want[:, :out_h, :out_w])


@pytest.mark.parametrize("pad", [0, 1, 2, 3])
def test_stride_2_f4_products_skip_only_zero_phases(pad):
    """_phase_rows: each element's product reads the rows of the phases its U is not 0 in, and
    skips only phases whose U is 0 for any weights (pad 1: 81 of 100 phase channels' depth);
    every (element, phase channel) has a row of its own."""
    c = 5
    rows_of, depths = _phase_rows(pad, c)
    u = _phase_weights(rand((7, c, 3, 3), seed=pad).astype(np.float64), pad)  # (25, 7, 4c)
    u = u.reshape(25, 7, c, 4)
    for e in range(25):
        rows = np.arange(c)[:, None] * rows_of[e, :, 0] + rows_of[e, :, 1]  # (c, 4)
        assert sorted(rows.ravel().tolist()) == list(range(4 * c))
        live = rows < depths[e]
        assert (u[e][:, ~live] == 0).all()
        assert (np.abs(u[e][:, live]).max(axis=0) > 0).all()  # random weights: none is 0
    if pad == 1:
        assert depths.sum() == 81 * c


@pytest.mark.parametrize("m", [2, 4, "s2"])
@pytest.mark.parametrize("k", [37, 600])
def test_winograd_weight_transform_matches_matrix_twin(m, k):
    from pydarknet.layers import winograd_weights

    g = rand((k, 9), seed=7)
    got = winograd_weights(g, _SIDES[m][1])
    assert got.dtype == _F
    np.testing.assert_allclose(got, reference.winograd_weights(g, m), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("m", [2, 4, "s2"])
@pytest.mark.parametrize("out_h,out_w,ty0,ty1,f0,f1", [(9, 11, 0, 3, 0, 3), (8, 8, 1, 2, 2, 5),
                                                       (1, 1, 0, 1, 0, 2), (13, 13, 2, 4, 1, 4),
                                                       (6, 3, 0, 2, 0, 1)])  # fmt: skip
def test_winograd_output_transform_matches_matrix_twin(m, out_h, out_w, ty0, ty1, f0, f1):
    tile, a, _ = _SIDES[m]
    tw = -(-out_w // tile)
    assert ty1 <= -(-out_h // tile)  # every case's tile rows fit its map
    mm = rand((f1 - f0, a * a, (ty1 - ty0) * tw), seed=out_h)
    got = np.full((6, out_h, out_w), np.nan, _F)
    _WINOGRAD[m][1](np.ascontiguousarray(mm.transpose(1, 0, 2)), ty0, ty1, tw, f0, f1, got)
    want = reference.winograd_output(mm, ty0, ty1, tw, m, out_h, out_w)
    rows = slice(tile * ty0, min(out_h, tile * ty1))
    np.testing.assert_allclose(got[f0:f1, rows], want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    untouched = np.ones(got.shape, bool)
    untouched[f0:f1, rows] = False
    assert np.isnan(got[untouched]).all()  # nothing written outside its filters and rows


@pytest.mark.parametrize("tile,stride", [(0, 1), (2, 1), (4, 1), (0, 2), (2, 2), (4, 2)])
@pytest.mark.parametrize("threads_n", [1, 2])
@pytest.mark.parametrize("c,h,w,filters,pad", [(16, 1, 1, 5, 1), (16, 3, 2, 9, 1), (32, 7, 5, 70, 1),
                                               (17, 30, 25, 8, 1), (20, 11, 9, 64, 0),
                                               (33, 45, 38, 130, 1), (8, 12, 17, 3, 1)])  # fmt: skip
def test_every_3x3_path_matches_the_direct_twin(tmp_path, monkeypatch, tile, stride, threads_n, c,
                                                h, w, filters, pad):  # fmt: skip
    """im2col, F(2x2, 3x3) and F(4x4, 3x3) forced on every shape at stride 1, im2col,
    F(2x2, 3x3) of two phases and F(4x4, 2x2) of four at stride 2, in row and filter steps."""
    monkeypatch.setattr(pydarknet.layers.Convolutional, "winograd_tile", lambda self, out: tile)
    before = threads.num_threads()
    threads.set_num_threads(threads_n)
    try:
        net = _conv_net(tmp_path, c, h, w, filters, 3, stride, pad)
        x = rand((2, c, h, w), seed=c)
        (got,) = net.forward(x)
    finally:
        threads.set_num_threads(before)
    for b in range(2):
        want = _twin(net, x[b : b + 1])
        assert np.abs(got[b] - want).max() <= 2e-5 * max(np.abs(want).max(), 1.0)


# conv3x3_rows' blocks are an intrinsic (no Python form): im2col's way only without the JIT
@pytest.mark.parametrize("direct", [True, False] if gemm._JIT else [False])
@pytest.mark.parametrize("threads_n", [1, 2])
@pytest.mark.parametrize("c,h,w,filters,stride,pad,act", [
    (3, 30, 50, 16, 1, 1, "leaky"), (3, 41, 57, 13, 2, 1, "mish"), (1, 9, 24, 5, 1, 0, "linear"),
    (4, 20, 66, 3, 2, 2, "logistic"), (2, 33, 49, 32, 2, 0, "relu"), (3, 12, 23, 4, 1, 1, "leaky"),
    (3, 25, 60, 6, 2, 1, "leaky"), (3, 17, 101, 13, 2, 1, "leaky"), (2, 8, 81, 9, 1, 1, "linear"),
    (3, 11, 31, 20, 1, 0, "leaky"),
])  # fmt: skip
def test_few_channel_3x3_without_im2col_matches_direct_twin(tmp_path, monkeypatch, direct,
                                                          threads_n, c, h, w, filters, stride,
                                                          pad, act):  # fmt: skip
    """1-4 channels, 3x3 (a first layer): each output row's taps read in place from a band of
    padded input rows (split by column phase at stride 2), CONV_FR filters x CONV_COLS columns
    a block (4 x 24, or 8 x 32 with AVX-512), the last block of a row ending at its end (out_w
    not a multiple of CONV_COLS), against the direct twin; a map narrower than CONV_COLS goes
    through im2col. A batch of 2, in row steps."""
    monkeypatch.setattr(gemm, "PACKED", direct)  # where the layer takes this way
    before = threads.num_threads()
    threads.set_num_threads(threads_n)
    try:
        net = _conv_net(tmp_path, c, h, w, filters, 3, stride, 0, act, padding=pad)
        x = rand((2, c, h, w), seed=c * w) - _F(0.5)
        (got,) = net.forward(x, profile=[])  # profiled: both images split over the threads
    finally:
        threads.set_num_threads(before)
    layer = net.layers[0]
    out_w = (w + 2 * pad - 3) // stride + 1
    wide = out_w >= kernels.CONV_COLS
    assert layer.few_channels_direct(got.shape[1:]) == (direct and wide)
    assert (getattr(layer, "_taps", None) is not None) == (direct and wide)
    weights = layer.weights.reshape(filters, c, 3, 3)  # read back from the file
    for b in range(2):
        y = reference.conv2d(x[b], weights, layer.biases, stride, pad)
        want = reference.zoo_activate(y, act)
        assert got[b].shape == want.shape
        np.testing.assert_allclose(got[b], want, rtol=0, atol=2e-5 * max(np.abs(want).max(), 1.0))


# the packed kernel needs the JIT (its intrinsics have no Python form): BLAS's way only without
@pytest.mark.parametrize("packed", [True, False] if gemm._JIT else [False])
@pytest.mark.parametrize("tile,stride", [(2, 1), (4, 1), (2, 2), (4, 2)])
@pytest.mark.parametrize("c,h,w,filters", [(32, 7, 5, 70), (33, 45, 38, 130)])
def test_winograd_products_either_way(tmp_path, monkeypatch, packed, tile, stride, c, h, w,
                                      filters):  # fmt: skip
    """Winograd's products through the packed kernel and through BLAS (gemm.PACKED, chosen by
    CPU: both must give the direct twin's numbers), in row and filter steps on 2 threads."""
    monkeypatch.setattr(gemm, "PACKED", packed)
    monkeypatch.setattr(pydarknet.layers.Convolutional, "winograd_tile", lambda self, out: tile)
    before = threads.num_threads()
    threads.set_num_threads(2)
    try:
        net = _conv_net(tmp_path, c, h, w, filters, 3, stride, 1)
        x = rand((1, c, h, w), seed=c)
        (got,) = net.forward(x)
    finally:
        threads.set_num_threads(before)
    assert net.layers[0].winograd_weights(tile).ndim == (4 if packed else 3)
    want = _twin(net, x)
    assert np.abs(got[0] - want).max() <= 2e-5 * max(np.abs(want).max(), 1.0)


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("padding,h,w", [(2, 37, 29), (3, 33, 33), (0, 40, 41), (1, 20, 23)])
def test_stride_2_winograd_with_explicit_padding(tmp_path, monkeypatch, tile, padding, h, w):
    """`padding=` other than size/2: tiles start 4 (or, over 4 phases, 8) columns apart at
    -padding (the phases at an even column at or before it), the output map is
    (h + 2 padding - 3) / 2 + 1 (convolutional_layer.c), against the direct twin."""
    monkeypatch.setattr(pydarknet.layers.Convolutional, "winograd_tile", lambda self, out: tile)
    cfg = tmp_path / "pad.cfg"
    cfg.write_text(f"[net]\nwidth={w}\nheight={h}\nchannels=16\n\n[convolutional]\n"
                   f"filters=12\nsize=3\nstride=2\npadding={padding}\nactivation=leaky\n")  # fmt: skip
    net = pydarknet.Network(cfg)
    net.save_random_weights(tmp_path / "pad.weights")
    x = rand((1, 16, h, w), seed=padding)
    (got,) = net.forward(x)
    want = _twin(net, x)
    assert got.shape[1:] == want.shape == (12, (h + 2 * padding - 3) // 2 + 1,
                                           (w + 2 * padding - 3) // 2 + 1)  # fmt: skip
    assert np.abs(got[0] - want).max() <= 2e-5 * max(np.abs(want).max(), 1.0)


def test_winograd_tile_choice(monkeypatch):
    from pydarknet.layers import Convolutional

    monkeypatch.setattr(gemm, "PACKED", True)  # the rules measured with the packed kernel
    conv = Convolutional.__new__(Convolutional)
    conv.size, conv.stride_x, conv.stride_y, conv.dilation, conv.groups = 3, 1, 1, 1, 1
    conv.c, conv.filters = 64, 64
    assert conv.winograd_tile((64, 104, 104)) == 4  # a big map: F(4x4)
    assert conv.winograd_tile((64, 13, 13)) == 2  # 16 4x4 tiles over 16x16: F(2x2)
    assert conv.winograd_tile((64, 16, 16)) == 4  # 16 4x4 tiles, none overhanging: F(4x4)
    assert conv.winograd_tile((64, 19, 19)) == 4  # 25 tiles over 20x20, as F(2x2)'s
    assert conv.winograd_tile((64, 18, 18)) == 2  # 25 tiles over 20x20; F(2x2)'s fit 18x18
    assert conv.winograd_tile((64, 12, 12)) == 2  # 9 tiles: too few
    conv.c = 128
    assert conv.winograd_tile((64, 13, 13)) == 4  # from 128 channels, 16 tiles suffice
    assert conv.winograd_tile((64, 12, 12)) == 2  # but not 9
    conv.c = 3
    assert conv.winograd_tile((64, 104, 104)) == 0  # three channels: im2col
    conv.c, conv.filters = 512, 1024
    assert conv.winograd_tile((1024, 13, 13)) == 4  # 75 MB of U still beats F(2x2)
    assert conv.winograd_tile((1024, 10, 10)) == 2
    assert conv.winograd_tile((1024, 2, 2)) == 2
    assert conv.winograd_tile((1024, 1, 1)) == 0  # one output: im2col
    conv.c = 32
    assert conv.winograd_tile((1024, 13, 13)) == 0  # few channels on a small map: im2col
    assert conv.winograd_tile((1024, 16, 16)) == 4  # unless 4x4 tiles fit it as well as 2x2
    conv.c = 8
    assert conv.winograd_tile((1024, 16, 16)) == 0
    conv.c, conv.stride_x, conv.stride_y = 64, 2, 2
    assert conv.winograd_tile((64, 104, 104)) == 4  # stride 2: F(4x4, 2x2) from 4 phases
    assert conv.winograd_tile((64, 40, 40)) == 2  # F(2x2) from two phases
    assert conv.winograd_tile((64, 9, 9)) == 2  # 25 tiles
    assert conv.winograd_tile((64, 7, 7)) == 0  # 16 tiles: im2col, but from 128 channels
    conv.c = 128
    assert conv.winograd_tile((64, 7, 7)) == 2
    assert conv.winograd_tile((64, 6, 6)) == 0  # 9 tiles: im2col
    assert conv.winograd_tile((64, 128, 128)) == 2  # F(4x4, 2x2)'s U: 100/9 of the weights
    conv.c = 64
    assert conv.winograd_tile((64, 64, 61)) == 4  # 16 4x4 tiles a side
    assert conv.winograd_tile((64, 64, 60)) == 2  # 15: too narrow
    conv.c = 32
    assert conv.winograd_tile((64, 104, 104)) == 4  # shallow GEMMs, many columns
    assert conv.winograd_tile((64, 52, 52)) == 2  # 2x2 tiles: 676
    assert conv.winograd_tile((64, 16, 16)) == 2  # 64 tiles
    assert conv.winograd_tile((64, 14, 14)) == 0  # 49
    conv.c = 8
    assert conv.winograd_tile((64, 104, 104)) == 0  # too few channels
    conv.c, conv.stride_y = 64, 1
    assert conv.winograd_tile((64, 104, 104)) == 0  # strides 2 x 1: im2col


def test_winograd_tile_choice_with_blas(monkeypatch):
    """Where BLAS does the products (gemm.PACKED false), the rules measured with BLAS."""
    from pydarknet.layers import Convolutional

    monkeypatch.setattr(gemm, "PACKED", False)
    conv = Convolutional.__new__(Convolutional)
    conv.size, conv.stride_x, conv.stride_y, conv.dilation, conv.groups = 3, 1, 1, 1, 1
    conv.c, conv.filters = 512, 1024
    assert conv.winograd_tile((1024, 13, 13)) == 2  # F(4x4)'s 16 tiles over 16x16: not here
    assert conv.winograd_tile((1024, 16, 16)) == 4
    conv.c, conv.stride_x, conv.stride_y = 128, 2, 2
    assert conv.winograd_tile((64, 7, 7)) == 0  # stride 2: >= 64 tiles
    assert conv.winograd_tile((64, 16, 16)) == 2
    conv.c = 32
    assert conv.winograd_tile((64, 16, 16)) == 0  # and from 16 channels, >= 2500
    assert conv.winograd_tile((64, 104, 104)) == 2


@pytest.mark.parametrize("packed", [False, True])
def test_pool_jobs_count_the_small_map_winograd_transform(monkeypatch, packed):
    """A Winograd layer on a small map hands the pool its input transform, then its filters:
    as Python steps two jobs, which network._runs_alone weighs; as a compiled job (the packed
    GEMM's) one, whose steps wait for the transform's."""
    from pydarknet.layers import Convolutional

    monkeypatch.setattr(gemm, "PACKED", packed)
    conv = Convolutional.__new__(Convolutional)
    conv.size, conv.stride_x, conv.stride_y, conv.dilation, conv.groups = 3, 1, 1, 1, 1
    conv.c, conv.filters, conv.use_winograd = 64, 64, True
    before = threads.num_threads()
    try:
        threads.set_num_threads(2)
        assert conv.pool_jobs((64, 16, 16)) == (1 if packed else 2)  # F(4x4), one row step
        assert conv.pool_jobs((64, 104, 104)) == 1  # F(4x4) by tile rows
        conv.c = 3
        assert conv.pool_jobs((64, 16, 16)) == 1  # im2col
        threads.set_num_threads(1)
        conv.c = 64
        assert conv.pool_jobs((64, 16, 16)) == 1  # one thread: by rows
    finally:
        threads.set_num_threads(before)


@pytest.mark.parametrize("th,tw,n,rows,slots", [(26, 26, 64, 5, 2), (52, 52, 64, 5, 2),
                                                (13, 13, 128, 7, 2), (64, 64, 64, 3, 2),
                                                (7, 7, 70, 14, 3), (23, 12, 130, 8, 2),
                                                (3, 3, 32, 2, 2), (1, 1, 8, 1, 2),
                                                (26, 26, 255, 5, 4), (26, 26, 64, 5, 1)])  # fmt: skip
def test_winograd_steps_cover_the_layer_in_equal_shares(th, tw, n, rows, slots):
    """Every (tile row, filter) in exactly one step; filter parts start on a GEMM block; the
    threads, taking steps in turn, get the same rows (26 rows in steps of 5 were 15 against 11)
    and the same filters of the rows left over but for one block's rounding."""
    from pydarknet.layers import _tile_steps

    steps = _tile_steps(th, tw, n, rows, slots)
    seen = np.zeros((th, n), np.int64)
    for ty0, ty1, f0, f1 in steps:
        assert 0 <= ty0 < ty1 <= th and 0 <= f0 < f1 <= n and f0 % gemm.MR == 0
        seen[ty0:ty1, f0:f1] += 1
    assert (seen == 1).all()
    whole = steps[(steps[:, 2] == 0) & (steps[:, 3] == n)]
    sizes = whole[:, 1] - whole[:, 0]
    assert (np.diff(sizes) <= 0).all() and sizes[:1].sum() - sizes[-1:].sum() <= 1  # even
    assert len(whole) % slots == 0
    if len(whole) > slots:
        assert sizes.max() <= rows  # no larger than asked for when the share needs several
    share = [sizes[j::slots].sum() for j in range(slots)]
    assert min(share) == max(share)
    parts = steps[len(whole) :]  # the rows left over, by filters
    if len(parts):
        assert len(parts) <= slots and len({(a, b) for a, b in parts[:, :2]}) == 1
        assert (parts[:, 3] - parts[:, 2]).max() < -(-n // slots) + gemm.MR


# -- memory plan ------------------------------------------------------------------------------
@pytest.mark.parametrize("name,h,w,n", [("yolov4-tiny", 160, 192, 1), ("yolov3-tiny", 96, 128, 1),
                                        ("yolov4-csp", 128, 96, 1), ("yolov4-tiny", 96, 96, 2),
                                        ("yolov3", 96, 64, 1)])  # fmt: skip
def test_arena_gives_the_same_outputs_as_one_buffer_per_layer(random_model, name, h, w, n):
    net, _ = random_model(CFG / f"{name}.cfg", seed=3)
    x = np.random.default_rng(n).random((n, 3, h, w), dtype=_F)
    shared = [a.copy() for a in net.forward(x)]
    arena = net.arena_floats
    again = net.forward(x)  # a second pass over the reused arena
    skip = pydarknet.network._SKIP
    skipped = [i for i, mode in enumerate(net._plan(n, h, w)[-1]) if mode == skip]
    assert skipped  # routes whose producers wrote in place are not run at all
    assert all(isinstance(net.layers[i], pydarknet.layers.Route) for i in skipped)
    net.share_memory = False
    try:
        alone = net.forward(x)
        assert net.arena_floats > arena  # sharing saved memory
        assert skip not in net._plan(n, h, w)[-1]  # every route copies
    finally:
        net.share_memory = True
    for a, b, c in zip(shared, again, alone):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_the_arena_workspace_and_buffers_start_on_64_byte_boundaries(random_model):
    # the vector kernels' rows of 8 floats never cross a cache line (kernels.tile_row_floats)
    assert all(aligned_empty(n).ctypes.data % 64 == 0 and aligned_empty(n).size == n
               for n in (1, 7, 1000, 1 << 20))  # fmt: skip
    net, _ = random_model(CFG / "yolov4-tiny.cfg", seed=3)
    slots, views, _, _, ws, *_ = net._plan(1, 160, 96)
    assert ws.ctypes.data % 64 == 0 and ws.size > 1  # Winograd layers need a workspace
    assert views and all(v.ctypes.data % 64 == 0 for v in views.values())


def test_forward_returns_fresh_arrays(random_model):
    net, _ = random_model(CFG / "yolov4-tiny.cfg", seed=3)
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=_F)
    first = net.forward(x)
    kept = [a.copy() for a in first]
    net.forward(x * 0.5)
    for a, b in zip(first, kept):  # the second call did not write into the first's results
        np.testing.assert_array_equal(a, b)


def test_liveness_lets_buffers_share_only_when_lifetimes_do_not_overlap(random_model):
    net, _ = random_model(CFG / "yolov4-tiny.cfg", seed=3)
    net.forward(np.zeros((1, 3, 96, 96), _F))
    slots, views, fresh, shapes, *_ = net._plan(1, 96, 96)
    last_use = {}
    for j in range(len(net.layers)):
        for i in net._needs(j):
            last_use[i] = j
    live = {}  # root -> (first writer, last reader)
    for i, slot in enumerate(slots):
        if slot is None:
            continue
        r = slot[0]
        a, b = live.get(r, (i, i))
        live[r] = (min(a, i), max(b, i, last_use.get(i, i)))
    spans = {r: (v.__array_interface__["data"][0], v.nbytes) for r, v in views.items()}
    for (r1, (p1, n1)), (r2, (p2, n2)) in itertools.combinations(spans.items(), 2):
        if p1 < p2 + n2 and p2 < p1 + n1:  # same memory: lifetimes must be disjoint
            (a1, b1), (a2, b2) = live[r1], live[r2]
            assert b1 < a2 or b2 < a1, (r1, r2, live[r1], live[r2])


def test_small_layers_run_on_the_calling_thread_alone(random_model, monkeypatch):
    """On 2 threads, a layer under ALONE_SECONDS (ALONE_JIT_SECONDS for compiled jobs) of
    estimated work sees a pool of one (the
    calling thread) and the others the shared pool; the outputs agree with every layer split
    (to float rounding: the GEMMs are cut differently)."""
    from pydarknet import network

    net, _ = random_model(CFG / "yolov4-tiny.cfg", seed=3)
    x = np.random.default_rng(0).random((1, 3, 320, 320), dtype=_F)
    seen = {}
    for i, layer in enumerate(net.layers):
        def forward(*a, i=i, real=layer.forward):
            seen[i] = threads.pool().size
            return real(*a)

        monkeypatch.setattr(layer, "forward", forward)
    before = threads.num_threads()
    try:
        threads.set_num_threads(2)
        shapes = net.infer_shapes(320, 320)
        prevs = [(3, 320, 320)] + shapes[:-1]
        modes = net._plan(1, 320, 320)[-1]  # routes whose inputs are in place: not called
        expected = {i: 1 if net._runs_alone(layer, prevs[i], shapes[i], 1) else 2
                    for i, layer in enumerate(net.layers) if modes[i] != network._SKIP}  # fmt: skip
        mixed = net.forward(x)
        assert seen == expected and set(seen.values()) == {1, 2}
        assert seen[0] == 2 and seen[25] == 1  # 320x320 -> 160x160 x32; a 20x20x512 maxpool
        # 10x10 256 -> 128, ~80 us: split where it runs as a compiled job (no GIL hand-off)
        assert seen[32] == (2 if net.layers[32].jit_jobs(shapes[32]) else 1)
        monkeypatch.setattr(network, "ALONE_SECONDS", 0.0)
        monkeypatch.setattr(network, "ALONE_JIT_SECONDS", 0.0)
        net._plans.clear()
        split = net.forward(x)
        assert set(seen.values()) == {2}
    finally:
        threads.set_num_threads(before)
        net._plans.clear()
    for a, b in zip(mixed, split):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(np.abs(b).max()))


# -- a batch, one image per thread -----------------------------------------------------------
@pytest.mark.parametrize("name,h,w", [("yolov4-tiny", 96, 128), ("yolov4-csp", 64, 96),
                                      ("yolov3-spp", 96, 64)])  # fmt: skip
def test_a_batch_runs_one_image_per_thread_in_its_own_arena(random_model, monkeypatch, name,
                                                              h, w):  # fmt: skip
    """Each image gets one thread's numbers exactly. (Network-level: not in CI's run without
    the JIT, which skips "arena" cases.)"""
    net, _ = random_model(CFG / f"{name}.cfg", seed=11)  # a fresh net: U made during the batch
    x = np.random.default_rng(4).random((3, 3, h, w), dtype=_F)
    apart = []
    real = pydarknet.Network._forward_images
    monkeypatch.setattr(pydarknet.Network, "_forward_images",
                        lambda self, *a: apart.append(1) or real(self, *a))  # fmt: skip
    before = threads.num_threads()
    try:
        threads.set_num_threads(2)
        together = net.forward(x)
        threads.set_num_threads(1)
        alone = [[a.copy() for a in net.forward(x[b : b + 1])] for b in range(3)]
    finally:
        threads.set_num_threads(before)
    assert apart == [1]
    for k, out in enumerate(together):
        np.testing.assert_array_equal(out, np.concatenate([a[k] for a in alone]))


@pytest.mark.parametrize("zoo", ["[avgpool]\n", "[local_avgpool]\nsize=3\nstride=2\n",
                                 "[upsample]\nstride=-2\n",
                                 "[maxpool]\nsize=2\nstride=2\nantialiasing=1\n",
                                 "[convolutional]\nfilters=8\nsize=1\n"
                                 "activation=normalize_channels_softmax\n"])  # fmt: skip
def test_a_batch_through_the_zoos_kernels_runs_one_image_per_thread(tmp_path, zoo):
    """The zoo's kernels are plain single-threaded ones split over the pool (no Numba parallel
    kernel is left): a batch runs one image per thread through them, with the numbers of one
    image on one thread, and a single image on 2 threads gets the same bits."""
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text("[net]\nwidth=32\nheight=32\nchannels=3\n\n[convolutional]\nfilters=8\n"
                   "size=3\nstride=1\npad=1\nactivation=leaky\n\n" + zoo)  # fmt: skip
    net = pydarknet.Network(cfg)
    net.save_random_weights(tmp_path / "zoo.weights", 1)
    x = np.random.default_rng(2).random((2, 3, 32, 32), dtype=_F)
    apart = []
    real = type(net)._forward_images
    before = threads.num_threads()
    try:
        threads.set_num_threads(2)
        type(net)._forward_images = lambda self, x, pool: apart.append(len(x)) or real(self, x, pool)
        (both,) = net.forward(x)
        type(net)._forward_images = real
        split = [net.forward(x[b : b + 1])[0].copy() for b in range(2)]
        threads.set_num_threads(1)
        alone = [net.forward(x[b : b + 1])[0].copy() for b in range(2)]
    finally:
        type(net)._forward_images = real
        threads.set_num_threads(before)
    assert apart == [2]
    np.testing.assert_array_equal(both, np.concatenate(alone))
    np.testing.assert_array_equal(np.concatenate(split), np.concatenate(alone))


# -- pruned heads ---------------------------------------------------------------------------
@pytest.mark.parametrize("name,size", [("yolov4-csp", 128), ("yolov4-p5", 128)])
def test_pruned_heads_equal_the_full_models_heads(random_model, name, size):
    net, _ = random_model(CFG / f"{name}.cfg", seed=5)
    x = np.random.default_rng(2).random((1, 3, size, size), dtype=_F)
    full = [a.copy() for a in net.forward(x)]
    whole = net.bflops((size, size))
    assert net.head_levels(size, size) == [3, 4, 5]
    try:
        net.prune([0, 1])  # without P5: "P5\P5"
        part = net.forward(x)
        assert len(part) == 2 and net.bflops((size, size)) < whole
        for a, b in zip(part, full[:2]):
            np.testing.assert_array_equal(a, b)
        net.prune([0])
        assert net.bflops((size, size)) < whole
        np.testing.assert_array_equal(net.forward(x)[0], full[0])
    finally:
        net.prune(None)
    assert net.bflops((size, size)) == whole
    for a, b in zip(net.forward(x), full):
        np.testing.assert_array_equal(a, b)


def test_prune_rejects_unknown_heads(random_model):
    net, _ = random_model(CFG / "yolov4-tiny.cfg")
    with pytest.raises(pydarknet.DarknetError, match=r"heads \[2\] do not name any of its 2"):
        net.prune([2])


def test_info_and_bench_heads_flag(capsys):
    from pydarknet.cli import main

    assert main(["info", str(CFG / "yolov4-csp.cfg"), "--size", "256x256"]) == 0
    full = float(capsys.readouterr().out.split("Total BFLOPS")[1].split()[0])
    assert main(["info", str(CFG / "yolov4-csp.cfg"), "--size", "256x256", "--heads", "P3,P4"]) == 0
    part = float(capsys.readouterr().out.split("Total BFLOPS")[1].split()[0])
    assert part < full
    assert main(["info", str(CFG / "yolov4-csp.cfg"), "--heads", "P7"]) == 1
    assert "P7 is not a head" in capsys.readouterr().err


def test_bench_command_prints_median_and_layers(capsys):
    from pydarknet.cli import main

    code = main(["bench", str(CFG / "yolov3-tiny.cfg"), "--size", "64x64", "--repeat", "2",
                 "--layers", "--threads", "1"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "pydarknet  median" in out and "GFLOP/s" in out and " 23 yolo" in out
    way = "pydarknet's packed GEMM" if gemm.PACKED else "BLAS"
    assert f"(Winograd products: {way} (" in out


def test_bench_layers_vs_opencv_times_opencv_per_darknet_layer(tmp_path, capsys):
    """--layers with --vs opencv adds OpenCV's time for each darknet layer (its getPerfProfile,
    by the darknet index in its layer names): every convolution shows a time > 0, and no
    OpenCV layer maps to an index the network does not have."""
    from pydarknet import bench
    from pydarknet.cli import main

    why = bench.opencv_available()
    if why:
        pytest.fail(f"{why}; the test extra pins OpenCV 4.x")
    cfg = CFG / "yolov3-tiny.cfg"
    code = main(["bench", str(cfg), "--size", "64x64", "--repeat", "2", "--layers",
                 "--threads", "1", "--vs", "opencv"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    convs = [line for line in out.splitlines() if line[:7].strip().isdigit() and " conv " in line]
    assert len(convs) == 13
    assert all(float(line.split("opencv")[1].split()[0]) > 0 for line in convs)

    net = pydarknet.Network(cfg)
    run = bench.opencv_forward(cfg, net.save_random_weights(tmp_path / "random.weights"), 1)
    run(bench.make_input(1, 64, 64))
    seconds = bench.opencv_layer_seconds(run)
    assert set(seconds) <= set(range(len(net.layers)))
    assert all(seconds[i] > 0 for i, layer in enumerate(net.layers) if layer.KIND == "conv")


def test_bench_vs_opencv_goes_on_alone_when_opencv_cannot_read_the_cfg(tmp_path, capsys):
    """[reorg3d] is a layer OpenCV's Darknet importer lacks: pydarknet is timed, OpenCV's part
    is skipped with one line that says why (or that OpenCV 4.x is not there)."""
    from pydarknet.cli import main

    cfg = tmp_path / "reorg3d.cfg"
    cfg.write_text("[net]\nwidth=16\nheight=16\nchannels=3\n\n[convolutional]\nfilters=4\n"
                   "size=3\npad=1\nactivation=leaky\n\n[reorg3d]\nstride=2\n")  # fmt: skip
    code = main(["bench", str(cfg), "--repeat", "2", "--threads", "1", "--vs", "opencv"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "pydarknet  median" in captured.out and "opencv     median" not in captured.out
    assert "OpenCV comparison skipped:" in captured.err
    assert "reorg3d" in captured.err or "OpenCV" in captured.err.split("skipped:")[1]


# -- image input -------------------------------------------------------------------------------
@pytest.mark.parametrize("h,w,out_h,out_w", [(9, 14, 5, 6), (5, 6, 9, 14), (1, 1, 3, 4),
                                             (6, 1, 2, 3), (4, 7, 4, 7), (8, 3, 1, 1),
                                             (3, 4, 42, 4)])  # fmt: skip  # darknet's last row
def test_resize_bgr_matches_the_c_loops(h, w, out_h, out_w):
    bgr = np.random.default_rng(h + 10 * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = np.empty((3, out_h, out_w), _F)
    image.resize_bgr(bgr, out)  # the kernel with its scratch
    planar = (bgr[:, :, ::-1].transpose(2, 0, 1).astype(_F) / _F(255)).copy()
    np.testing.assert_array_equal(out, reference.resize_image(planar, out_w, out_h))


# -- NMS against the Darknet port --------------------------------------------------------------
@pytest.mark.parametrize("kind,beta", [("default", 0.6), ("greedynms", 0.6), ("diounms", 0.8)])
def test_nms_kernel_matches_the_darknet_port_on_many_boxes(kind, beta):
    """kernels.nms_class through postprocess.nms: 300 boxes in clusters (many suppressions),
    ties, zero-size boxes and boxes that share a centre (DIoU's c == 0 and d == 0)."""
    from .test_postprocess import nms_as_the_darknet_port

    rng = np.random.default_rng(9)
    n = 300
    centres = rng.random((12, 2)) * 0.8 + 0.1
    xy = centres[rng.integers(0, 12, n)] + rng.normal(0, 0.02, (n, 2))
    boxes = np.concatenate([xy, 0.05 + rng.random((n, 2)) * 0.15], axis=1).astype(_F)
    boxes[10, 2:] = 0
    boxes[11] = boxes[12] = boxes[13]
    boxes[20, 2:] = boxes[21, 2:] = 0
    boxes[21, :2] = boxes[20, :2]
    probs = rng.choice(np.array([0, 0.3, 0.5, 0.5, 0.7, 0.9], _F), (n, 4)).astype(_F)
    obj = np.where(rng.random(n) < 0.1, 0, 0.8).astype(_F)
    got = nms_as_the_darknet_port(boxes, obj, probs, kind, beta)
    assert (got == 0).sum() > (probs == 0).sum() + 100  # many suppressions


# -- threads and cache ----------------------------------------------------------------------
def test_pool_runs_every_step_once_and_raises():
    pool = threads.Pool(3)
    try:
        seen = []
        pool.run(lambda i, slot: seen.append((i, slot)), 50)
        assert sorted(i for i, _ in seen) == list(range(50))
        assert {slot for _, slot in seen} <= {0, 1, 2}

        def boom(i, slot):
            if i == 7:
                raise ValueError("step 7")

        with pytest.raises(ValueError, match="step 7"):
            pool.run(boom, 20)
    finally:
        pool.close()


def test_pool_returns_only_after_every_claimed_step_ended():
    """The caller never waits for a worker to wake, but must wait for a step a worker runs:
    steps share scratch memory with the next job. A failing step stops new claims, and the
    error is raised after the steps still running have ended."""
    import time

    pool = threads.Pool(2)
    try:
        for _ in range(20):
            ended = []

            def slow_on_worker(i, slot):
                if slot:
                    time.sleep(0.01)
                ended.append(i)

            pool.run(slow_on_worker, 4)
            assert sorted(ended) == [0, 1, 2, 3]

        started, ended = [], []

        def fail_while_worker_runs(i, slot):
            started.append(i)
            if slot:
                time.sleep(0.05)
                ended.append(i)
            else:
                time.sleep(0.01)  # the worker has claimed a step by now
                raise ValueError("caller's step")

        with pytest.raises(ValueError, match="caller's step"):
            pool.run(fail_while_worker_runs, 100)
        assert len(ended) == len(started) - 1 and len(started) < 100
    finally:
        pool.close()


def test_cache_dir_respects_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "given"))
    assert threads.cache_dir() == tmp_path / "given"
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert threads.cache_dir() == tmp_path / "xdg" / "pydarknet" / "numba"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert threads.cache_dir() == tmp_path / "home" / ".cache" / "pydarknet" / "numba"


def test_winograd_rows_are_vectors_with_room_and_elements_spread_over_the_cache():
    for t, tw in itertools.product(range(1, 700, 7), (1, 3, 4, 7, 8, 13, 26, 32)):
        ld = kernels.tile_row_floats(t, tw)
        assert ld >= t and ld % 8 == 0 and ld % 128 != 0
        if tw < 8 and t % tw == 0:  # a last tile row's run of 8 fits (kernels._short_run)
            assert t - tw + 8 <= ld
        for rows in (1, 6, 64, 128, 255, 256, 512, 1024):
            r = kernels.element_rows(rows, ld)
            assert rows <= r < rows + 16 and (r * ld) % 128 != 0
