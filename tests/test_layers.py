"""Zoo layers (layers_more.py and the new [convolutional]/[maxpool]/[shortcut] options) against
literal ports of darknet's C in tests/reference.py, on tiny cfgs whose last layer is under test.

OpenCV's importer lacks most of these (reorg3d, local_avgpool, maxpool_depth, antialiasing,
normalize_channels, weighted shortcuts, implicit, ...), so the twins are the oracle here.
"""

from __future__ import annotations

import numpy as np
import pytest

import pydarknet
from pydarknet import kernels
from pydarknet.weights import Header, write_weights

from . import reference

_F = np.float32


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(_F)


def net_from(tmp_path, body: str, c: int, h: int, w: int, header: Header | None = None):
    """A Network for `[net]` c x h x w followed by `body`, with random weights loaded."""
    cfg = tmp_path / "t.cfg"
    cfg.write_text(f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n\n{body}")
    net = pydarknet.Network(cfg)
    path = tmp_path / "t.weights"
    write_weights(path, net.random_weights(3), header)
    net.load_weights(path)
    return net


def run(net, x: np.ndarray) -> np.ndarray:
    out = net.forward(x[None])
    assert len(out) == 1 and out[0].dtype == _F
    return out[0][0]


# -- kernels against their twins ------------------------------------------------------------------
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 2, 5), (7, 3, 1)])
def test_normalize_channels_kernel(mode, shape):
    x = rand(*shape)
    y = x.reshape(shape[0], -1).copy()
    half = y.shape[1] // 2
    kernels.normalize_channels(y, mode, 0, half)  # in two pixel ranges, as the pool's steps do
    kernels.normalize_channels(y, mode, half, y.shape[1])
    np.testing.assert_allclose(y.reshape(shape), reference.zoo_normalize_channels(x, mode),
                               rtol=1e-6, atol=1e-7)  # fmt: skip


@pytest.mark.parametrize("size,stride,pad", [(3, 1, 1), (3, 2, 1), (2, 2, 0), (2, 1, 0)])
@pytest.mark.parametrize("h,w", [(1, 1), (2, 3), (5, 5), (6, 7)])
def test_blur_kernel(size, stride, pad, h, w):
    x = rand(3, h, w)
    ref = reference.zoo_blur(x, size, stride, stride, pad)
    out = np.empty_like(ref)
    kernels.blur(x, size, stride, stride, pad, out)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1, 1), (4, 3, 5), (2, 7, 7), (8, 3, 5), (19, 6, 7),
                                   (16, 1, 1)])  # blocks of 8 channels and what is left
def test_avgpool_kernel(shape):
    x = rand(*shape)
    out = np.empty(shape[0], _F)
    kernels.avgpool_global(x.reshape(shape[0], -1), out)
    np.testing.assert_array_equal(out, reference.zoo_avgpool(x))


@pytest.mark.parametrize("groups,temp", [(1, 1.0), (2, 0.5), (3, 2.0)])
def test_softmax_kernel(groups, temp):
    x = rand(6, 5, 1) * 4
    out = np.empty_like(x)
    kernels.softmax_groups(x.reshape(groups, -1), _F(temp), out.reshape(groups, -1))
    np.testing.assert_array_equal(out, reference.zoo_softmax(x, groups, temp))


# -- layers on tiny cfgs ----------------------------------------------------------------------------
@pytest.mark.parametrize("c,h,w,stride", [(4, 4, 6, 2), (8, 6, 6, 2), (9, 3, 6, 3)])
def test_reorg_is_darknets_old_reorg(tmp_path, c, h, w, stride):
    net = net_from(tmp_path, f"[reorg]\nstride={stride}\n", c, h, w)
    x = rand(c, h, w)
    np.testing.assert_array_equal(run(net, x), reference.zoo_reorg_old(x, stride))


@pytest.mark.parametrize("c,h,w,stride", [(3, 4, 6, 2), (2, 6, 3, 3), (5, 2, 2, 1)])
def test_reorg3d(tmp_path, c, h, w, stride):
    net = net_from(tmp_path, f"[reorg3d]\nstride={stride}\n", c, h, w)
    x = rand(c, h, w)
    np.testing.assert_array_equal(run(net, x), reference.zoo_reorg3d(x, stride))


def test_avgpool_layer(tmp_path):
    net = net_from(tmp_path, "[avgpool]\n", 5, 7, 3)
    x = rand(5, 7, 3)
    np.testing.assert_array_equal(run(net, x)[:, 0, 0], reference.zoo_avgpool(x))


@pytest.mark.parametrize(
    "size,stride,h,w", [(3, 2, 7, 5), (2, 2, 5, 5), (3, 1, 4, 6), (1, 1, 2, 3)]
)
def test_local_avgpool(tmp_path, size, stride, h, w):
    net = net_from(tmp_path, f"[local_avgpool]\nsize={size}\nstride={stride}\n", 3, h, w)
    x = rand(3, h, w)
    pad = size - 1
    oh, ow = (h + pad - size) // stride + 1, (w + pad - size) // stride + 1
    ref = reference.zoo_local_avgpool(x, size, stride, stride, pad, oh, ow)
    np.testing.assert_array_equal(run(net, x), ref)
    assert net.layer_bflops()[0] == pytest.approx(size * size * 3 * oh * ow / 1e9, rel=1e-6)


@pytest.mark.parametrize("c,out_channels", [(7, 3), (4, 4), (2, 3)])
def test_maxpool_depth(tmp_path, c, out_channels):
    body = f"[maxpool]\nmaxpool_depth=1\nout_channels={out_channels}\nsize=1\nstride=1\n"
    net = net_from(tmp_path, body, c, 3, 5)
    x = rand(c, 3, 5)
    np.testing.assert_array_equal(run(net, x), reference.zoo_maxpool_depth(x, out_channels))


def _maxpool_stride1(x, size):
    """forward_maxpool_layer at stride 1, padding size-1, origin -(size-1)//2, -FLT_MAX pads."""
    c, h, w = x.shape
    pad = size - 1
    xp = np.full((c, h + pad, w + pad), -np.finfo(_F).max, _F)
    off = pad // 2
    xp[:, off : off + h, off : off + w] = x
    out = np.full((c, h, w), -np.inf, _F)
    for n in range(size):
        for m in range(size):
            out = np.maximum(out, xp[:, n : n + h, m : m + w])
    return out


def test_spp_block_pools_the_smaller_pools_output(tmp_path):
    """An SPP block ([maxpool] 5, 9 and 13 of one layer, concatenated with it): the 9 and the 13
    pool the 5's and the 9's outputs with a 5 (Network._chain_spp_pools), and each part of the
    concatenation is still darknet's pool of the block's input."""
    body = ("[convolutional]\nfilters=4\nsize=1\nstride=1\nactivation=linear\n\n"
            "[maxpool]\nstride=1\nsize=5\n\n[route]\nlayers=-2\n\n"
            "[maxpool]\nstride=1\nsize=9\n\n[route]\nlayers=-4\n\n"
            "[maxpool]\nstride=1\nsize=13\n\n[route]\nlayers=-1,-3,-5,-6\n")  # fmt: skip
    net = net_from(tmp_path, body, 3, 11, 14)
    pools = [net.layers[i] for i in (3, 5)]  # the 9 and the 13
    assert [(pool.inputs, pool.window) for pool in pools] == [([1], 5), ([3], 5)]
    out = run(net, rand(3, 11, 14))  # pool 13, pool 9, pool 5, the input: 4 channels each
    block_input = out[12:]
    for part, size in enumerate((13, 9, 5)):
        want = reference.maxpool(block_input, size, 1, 1, size - 1)
        np.testing.assert_array_equal(out[4 * part : 4 * part + 4], want)


@pytest.mark.parametrize("jit", [False, True])
def test_even_2x2_pool_into_part_of_a_batch_buffer(tmp_path, monkeypatch, request, jit):
    """A 2x2/2 pool of an even map writing a channel range of a batch's buffer (as a
    concatenating [route] lends its inputs): the range is no contiguous array for 2 images,
    but each image's part is, and kernels.maxpool_2x2_even runs per image (in Python steps,
    or in its compiled job), as darknet's pool; an image part that is not contiguous takes the
    general loop."""
    calls = []
    monkeypatch.setattr(pydarknet.layers, "JIT_JOBS", jit)
    before = pydarknet.threads.num_threads()
    pydarknet.threads.set_num_threads(2)  # (a pool of one runs the kernel without a job)
    request.addfinalizer(lambda: pydarknet.threads.set_num_threads(before))
    if jit and pydarknet.layers.MaxPool.jit_jobs():
        job = kernels.maxpool_2x2_job

        def counted(st, slot, *a):  # the caller's calls: a worker may enter after the job is done
            if slot == 0:
                calls.append(1)
            return job(st, slot, *a)

        monkeypatch.setattr(kernels, "maxpool_2x2_job", counted)
    else:
        fast = kernels.maxpool_2x2_even
        monkeypatch.setattr(kernels, "maxpool_2x2_even", lambda *a: calls.append(1) or fast(*a))
    pool = net_from(tmp_path, "[maxpool]\nsize=2\nstride=2\n", 3, 8, 10).layers[0]
    x = rand(2, 3, 8, 10)
    whole = np.full((2, 7, 4, 5), np.nan, _F)
    part = whole[:, 2:5]
    assert not part.flags.c_contiguous and part[0].flags.c_contiguous
    pool.forward(x, [], part, None)
    assert calls
    for b in range(2):
        np.testing.assert_array_equal(part[b], reference.maxpool(x[b], 2, 2, 2, 1))
    assert np.isnan(whole[:, :2]).all() and np.isnan(whole[:, 5:]).all()
    calls.clear()
    columns = np.full((2, 3, 4, 7), np.nan, _F)[:, :, :, :5]  # rows 7 floats apart: not contiguous
    pool.forward(x, [], columns, None)
    assert not calls
    for b in range(2):
        np.testing.assert_array_equal(columns[b], reference.maxpool(x[b], 2, 2, 2, 1))


@pytest.mark.parametrize("aa,stride", [(1, 2), (2, 2), (1, 1)])
def test_maxpool_antialiasing(tmp_path, aa, stride):
    body = f"[maxpool]\nsize=2\nstride={stride}\nantialiasing={aa}\n"
    net = net_from(tmp_path, body, 3, 7, 6)
    x = rand(3, 7, 6)
    size, pad = (2, 0) if aa == 2 else (3, 1)
    ref = reference.zoo_blur(_maxpool_stride1(x, 2), size, stride, stride, pad)
    np.testing.assert_allclose(run(net, x), ref, rtol=1e-6, atol=1e-6)


def _conv_ref(layer, x, stride=1, pad=None, dilation=1):
    """darknet's fused conv: weights (n, c, k, k) and biases from the loaded layer."""
    n, k = layer.filters, layer.size
    wts = layer.weights.reshape(n, layer.c, k, k)
    pad = k // 2 if pad is None else pad
    y = reference.zoo_conv2d(x, wts, stride, stride, pad * dilation, dilation)
    return y + layer.biases[:, None, None]


@pytest.mark.parametrize("aa,stride", [(1, 2), (2, 2), (1, 1), (1, 3)])
def test_conv_antialiasing(tmp_path, aa, stride):
    body = (f"[convolutional]\nfilters=4\nsize=3\nstride={stride}\npad=1\nantialiasing={aa}\n"
            "activation=leaky\n")  # fmt: skip
    net = net_from(tmp_path, body, 2, 9, 8)
    x = rand(2, 9, 8)
    host = _conv_ref(net.layers[0], x)
    host = np.where(host > 0, host, _F(0.1) * host)
    size, pad = (2, 0) if aa == 2 else (3, 1)
    ref = reference.zoo_blur(host, size, stride, stride, pad)
    np.testing.assert_allclose(run(net, x), ref, rtol=1e-5, atol=1e-5)
    # darknet counts only the stride-1 host conv (its blur layer adds no BFLOPs to the total)
    assert net.layer_bflops()[0] == pytest.approx(2 * 4 * 2 * 9 * 9 * 8 / 1e9, rel=1e-6)


@pytest.mark.parametrize("dilation,h,w", [(2, 9, 7), (3, 10, 10), (2, 4, 5)])
def test_conv_dilation(tmp_path, dilation, h, w):
    body = f"[convolutional]\nfilters=3\nsize=3\nstride=1\npad=1\ndilation={dilation}\nactivation=linear\n"
    net = net_from(tmp_path, body, 2, h, w)
    x = rand(2, h, w)
    out = run(net, x)
    assert out.shape == (3, h, w)  # (h + 2*pad - size)/stride + 1, dilation ignored
    np.testing.assert_allclose(out, _conv_ref(net.layers[0], x, dilation=dilation), rtol=1e-5,
                               atol=1e-5)  # fmt: skip


@pytest.mark.parametrize("act,mode", [("normalize_channels", 0), ("normalize_channels_softmax", 1),
                                      ("normalize_channels_softmax_maxval", 2)])  # fmt: skip
def test_conv_normalize_channels(tmp_path, act, mode):
    body = f"[convolutional]\nfilters=5\nsize=1\nstride=1\nactivation={act}\n"
    net = net_from(tmp_path, body, 3, 4, 3)
    x = rand(3, 4, 3)
    ref = reference.zoo_normalize_channels(_conv_ref(net.layers[0], x), mode)
    np.testing.assert_allclose(run(net, x), ref, rtol=1e-5, atol=1e-6)


def test_softmax_layer(tmp_path):
    net = net_from(tmp_path, "[softmax]\ngroups=2\ntemperature=0.5\n", 4, 3, 2)
    x = rand(4, 3, 2) * 3
    np.testing.assert_array_equal(run(net, x), reference.zoo_softmax(x, 2, 0.5))


def test_sam_and_scale_channels(tmp_path):
    sam = net_from(
        tmp_path, "[empty]\n\n[activation]\nactivation=logistic\n\n[sam]\nfrom=-2\n", 3, 4, 5
    )
    x = rand(3, 4, 5)
    np.testing.assert_allclose(run(sam, x), x * (_F(1) / (_F(1) + np.exp(-x))), rtol=1e-6)

    body = "[empty]\n\n[avgpool]\n\n[scale_channels]\nfrom=-2\nactivation=leaky\n"
    sc = net_from(tmp_path, body, 3, 4, 5)
    y = x * reference.zoo_avgpool(x)[:, None, None]
    np.testing.assert_array_equal(run(sc, x), np.where(y > 0, y, _F(0.1) * y))

    body = "[empty]\n\n[maxpool]\nmaxpool_depth=1\nout_channels=1\n\n[scale_channels]\nfrom=-2\nscale_wh=1\n"
    wh = net_from(tmp_path, body, 3, 4, 5)
    np.testing.assert_array_equal(run(wh, x), x * x.max(axis=0, keepdims=True))


@pytest.mark.parametrize("wt,norm", [("none", "none"), ("per_feature", "none"),
                                     ("per_channel", "relu"), ("per_feature", "softmax"),
                                     ("per_channel", "softmax")])  # fmt: skip
def test_shortcut_weighted_and_differently_sized(tmp_path, wt, norm):
    # layers: 0 = input copy (4x6x5), 1 = 3x6x5 slice, 2 = 2x3x2 downsampled, 3 = 4x6x5 again
    body = ("[empty]\n\n[route]\nlayers=0\ngroups=4\ngroup_id=0\n\n[maxpool]\nsize=2\nstride=2\n\n"
            "[route]\nlayers=0\n\n"
            f"[shortcut]\nfrom=1,2\nweights_type={wt}\nweights_normalization={norm}\n")  # fmt: skip
    net = net_from(tmp_path, body, 4, 6, 5)
    x = rand(4, 6, 5)
    lay1 = x[:1]
    lay2 = _maxpool_stride1(lay1, 2)[:, ::2, ::2]
    raw = None
    if wt != "none":
        spec = net.param_spec()
        arrays = net.random_weights(3)
        raw = next(a for (i, name, _), a in zip(spec, arrays) if i == 4)
    ref = reference.zoo_shortcut(x, [lay1, lay2], raw, norm)
    np.testing.assert_allclose(run(net, x), ref, rtol=1e-6, atol=1e-6)
    n = 4 * 6 * 5 * 2
    assert net.layer_bflops()[4] == pytest.approx((2 * n if wt != "none" else n) / 1e9, rel=1e-6)


@pytest.mark.parametrize("wt,norm,act", [("none", "none", "linear"), ("none", "none", "leaky"),
                                         ("per_feature", "none", "mish"),
                                         ("per_channel", "softmax", "logistic")])  # fmt: skip
def test_shortcut_of_same_sized_layers_in_channel_steps(tmp_path, wt, norm, act):
    """Inputs of the output's width and height are summed in channel steps (Shortcut._sum):
    a 3-channel input adds to the first 3 of 7 channels, a 9-channel one to all 7, in each image
    of a batch of 2 as darknet's flat loop does, then the activation."""
    # layers: 0 = input copy (9x6x5), 1 = its first 3 channels, 2 = a 1x1 conv to 7, 3 = shortcut
    body = ("[empty]\n\n[route]\nlayers=0\ngroups=3\ngroup_id=0\n\n"
            "[convolutional]\nfilters=7\nsize=1\nactivation=linear\n\n"
            f"[shortcut]\nfrom=1,0\nweights_type={wt}\nweights_normalization={norm}\n"
            f"activation={act}\n")  # fmt: skip
    net = net_from(tmp_path, body, 9, 6, 5)
    net.output_layers = [2, 3]  # the shortcut's previous layer too
    x = np.stack([rand(9, 6, 5, seed=1), rand(9, 6, 5, seed=2)])
    prev, out = net.forward(x)
    raw = None
    if wt != "none":
        spec = net.param_spec()
        raw = next(a for (i, _, _), a in zip(spec, net.random_weights(3)) if i == 3)
    for b in range(2):
        ref = reference.zoo_shortcut(prev[b], [x[b, :3], x[b]], raw, norm)
        if act != "linear":
            ref = reference.zoo_activate(ref, act)
        np.testing.assert_allclose(out[b], ref, rtol=1e-6, atol=1e-6)
    # in uneven steps (a pool of threads cuts the channels so), the same floats
    stepped = np.full_like(out, np.nan)
    outputs = [x, x[:, :3], prev]
    for c0, c1 in [(0, 2), (2, 5), (5, 7)]:
        net.layers[3]._sum(prev, outputs, stepped, c0, c1)
    np.testing.assert_array_equal(stepped, out)


def test_shortcut_of_a_large_map_splits_over_the_pool_and_adds_exactly(tmp_path):
    """16x256x256 (1M adds) is split in channel steps over the pool: the same floats as one
    numpy add of the two layers, then leaky."""
    body = ("[empty]\n\n[convolutional]\nfilters=16\nsize=1\nactivation=linear\n\n"
            "[shortcut]\nfrom=0\nactivation=leaky\n")  # fmt: skip
    net = net_from(tmp_path, body, 16, 256, 256)
    assert not net._runs_alone(net.layers[2], (16, 256, 256), (16, 256, 256), 1) or (
        pydarknet.threads.pool().size == 1)
    net.output_layers = [1, 2]
    x = rand(1, 16, 256, 256, seed=4)
    conv, out = net.forward(x)
    y = conv + x
    np.testing.assert_array_equal(out, np.where(y > 0, y, _F(0.1) * y))


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("bn", [0, 1])
def test_connected(tmp_path, transpose, bn):
    header = Header(0, 1001 if transpose else 2, 0)
    body = f"[connected]\noutput=7\nbatch_normalize={bn}\nactivation=leaky\n"
    net = net_from(tmp_path, body, 3, 2, 4, header)
    assert net.header.transpose is transpose
    arrays = dict(zip([name for _, name, _ in net.param_spec()], net.random_weights(3)))
    w = arrays["weights"].reshape(24, 7).T if transpose else arrays["weights"].reshape(7, 24)
    x = rand(3, 2, 4)
    y = w @ x.reshape(-1)
    if bn:
        y = (y - arrays["rolling_mean"]).astype(np.float64) / np.sqrt(
            (arrays["rolling_variance"] + _F(1e-5)).astype(np.float64)
        )
        y = y.astype(_F) * arrays["scales"]
    y = y + arrays["biases"]
    y = np.where(y > 0, y, _F(0.1) * y)
    np.testing.assert_allclose(run(net, x)[:, 0, 0], y, rtol=1e-5, atol=1e-6)


def test_batchnorm_crop_implicit_activation(tmp_path):
    x = rand(3, 6, 8)
    bn = net_from(tmp_path, "[batchnorm]\n", 3, 6, 8)
    a = dict(zip([name for _, name, _ in bn.param_spec()], bn.random_weights(3)))
    ref = (x - a["rolling_mean"][:, None, None]).astype(np.float64) / np.sqrt(
        (a["rolling_variance"] + _F(1e-5)).astype(np.float64)
    )[:, None, None]
    ref = ref.astype(_F) * a["scales"][:, None, None] + a["biases"][:, None, None]
    np.testing.assert_array_equal(run(bn, x), ref)

    crop = net_from(tmp_path, "[crop]\ncrop_height=3\ncrop_width=5\nflip=1\n", 3, 6, 8)
    np.testing.assert_array_equal(run(crop, x), x[:, 1:4, 1:6] * _F(2) - _F(1))
    assert crop.infer_shapes(12, 16)[0] == (3, 6, 8)  # resize_crop_layer keeps crop_height/h

    imp = net_from(tmp_path, "[implicit]\nfilters=5\natoms=2\n", 3, 6, 8)
    np.testing.assert_array_equal(run(imp, x), imp.random_weights(3)[0].reshape(5, 2, 1))

    act = net_from(tmp_path, "[activation]\nactivation=tanh\n", 3, 6, 8)
    np.testing.assert_allclose(run(act, x), np.tanh(x), rtol=1e-5, atol=1e-6)


def test_upsample_negative_stride_sums(tmp_path):
    net = net_from(tmp_path, "[upsample]\nstride=-2\nscale=0.25\n", 3, 5, 7)
    x = rand(3, 5, 7)
    np.testing.assert_array_equal(run(net, x), reference.zoo_downsample(x, 2, 0.25, 2, 3))


def test_lrn_and_local(tmp_path):
    x = rand(6, 4, 3)
    lrn = net_from(tmp_path, "[lrn]\nsize=5\nalpha=0.01\nbeta=0.75\nkappa=2\n", 6, 4, 3)
    sq = x * x
    norms = np.empty_like(x)
    norms[0] = 2 + 0.01 * (sq[0] + sq[1])  # channels 0 .. size/2-1 (darknet's window)
    for k in range(1, 6):
        norms[k] = norms[k - 1]
        if k - 3 >= 0:
            norms[k] -= 0.01 * sq[k - 3]
        if k + 2 < 6:
            norms[k] += 0.01 * sq[k + 2]
    np.testing.assert_allclose(run(lrn, x), norms**-0.75 * x, rtol=1e-5)

    local = net_from(
        tmp_path, "[local]\nfilters=2\nsize=3\nstride=1\npad=1\nactivation=linear\n", 6, 4, 3
    )
    layer = local.layers[0]
    out = run(local, x)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    for j in range(4 * 3):
        oy, ox = divmod(j, 3)
        patch = xp[:, oy : oy + 3, ox : ox + 3].reshape(-1)
        want = layer.weights[j] @ patch + layer.biases[:, j]
        np.testing.assert_allclose(out[:, oy, ox], want, rtol=1e-5, atol=1e-5)


def test_cost_and_dropout_pass_the_previous_output(tmp_path):
    net = net_from(tmp_path, "[softmax]\n\n[cost]\ntype=sse\n", 4, 1, 1)
    assert net.output_layers == [0]
    x = rand(4, 1, 1)
    np.testing.assert_array_equal(run(net, x), reference.zoo_softmax(x, 1, 1.0))


# -- what darknet parses but pydarknet refuses: one CfgError naming file:line and the option --------
@pytest.mark.parametrize(
    "body,match",
    [
        ("[lstm]\noutput=4\n", r"t\.cfg:6: \[lstm\] recurrent layers are not supported"),
        ("[implicit_add]\nfilters=3\n", r"t\.cfg:6: \[implicit_add\] \[implicit_add\] is YOLOR's"),
        ("[softmax]\ntree=data/9k.tree\n", r"t\.cfg:7: \[softmax\] tree=data/9k.tree: softmax trees"),
        ("[softmax]\nspatial=1\n", r"t\.cfg:7: \[softmax\] spatial=1: spatial softmax"),
        ("[reorg3d]\nstride=2\nreverse=1\n", r"t\.cfg:8: \[reorg3d\] reverse=1: is not supported"),
        ("[empty]\n\n[sam]\nfrom=-1\nactivation=mish\n",
         r"t\.cfg:10: \[sam\] activation=mish: darknet's activate_array\(\) has no case for mish"),
        ("[empty]\n\n[shortcut]\nfrom=-1\nactivation=normalize_channels\n",
         r"t\.cfg:10: \[shortcut\] activation=normalize_channels: darknet applies"),
        ("[maxpool]\nmaxpool_depth=1\nantialiasing=1\n",
         r"t\.cfg:8: \[maxpool\] antialiasing=1: darknet skips the blur"),
        ("[convolutional]\nfilters=2\nsize=3\nantialiasing=3\n", r"t\.cfg:9: \[convolutional\] antialiasing=3"),
        ("[convolutional]\nfilters=2\nsize=3\ndilation=2\n",
         r"t\.cfg:9: \[convolutional\] dilation=2: darknet's output size 6x6 and its dilated im2col \(4x4\)"),
        ("[convolutional]\nfilters=2\nsize=3\ncoordconv=1\n", r"t\.cfg:9: \[convolutional\] coordconv=1"),
        ("[local]\nfilters=2\nsize=5\npad=1\n", r"t\.cfg:9: \[local\] pad=1: darknet's output size"),
        ("[connected]\noutput=3\nactivation=swish\n", r"t\.cfg:8: \[connected\] activation=swish"),
    ],
)  # fmt: skip
def test_refused_options_name_file_line(tmp_path, body, match):
    cfg = tmp_path / "t.cfg"
    cfg.write_text(f"[net]\nwidth=8\nheight=8\nchannels=3\n\n{body}")
    with pytest.raises(pydarknet.CfgError, match=match):
        pydarknet.Network(cfg)


def test_unknown_sections_do_not_list_refused_ones(tmp_path):
    cfg = tmp_path / "t.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n\n[deconvolutional]\n")
    with pytest.raises(
        pydarknet.CfgError, match=r"t\.cfg:6: unknown section \[deconvolutional\]"
    ) as e:
        pydarknet.Network(cfg)
    assert "lstm" not in str(e.value) and "sam" in str(e.value)


# -- every activation darknet defines, and the [convolutional]/[maxpool] stride_x/stride_y options --
ACTS = [
    "logistic",
    "loggy",
    "relu",
    "elu",
    "selu",
    "gelu",
    "relie",
    "ramp",
    "leaky",
    "revleaky",
    "tanh",
    "plse",
    "stair",
    "hardtan",
    "lhtan",
    "linear",
    "swish",
    "mish",
    "hard_mish",
]


@pytest.mark.parametrize("name", ACTS)
def test_activation_kernels_follow_activations_h(name):
    x = np.concatenate([np.linspace(-30, 30, 601, dtype=_F), rand(400) * 3,
                        _F([-4, 4, -2, 0, 1, -1, 20, -20, 2.5, -2.5])])  # fmt: skip
    y = x.reshape(1, -1).copy()
    kernels.activate(y, pydarknet.layers.ACTIVATIONS[name], *pydarknet.layers.act_scratch())
    # tanh/gelu/mish use libm calls whose last bit may differ between numba and Python. mish:
    # darknet's softplus is logf(expf(x) + 1), the kernel's log1p(exp(x)) is more accurate for
    # x < -15 (abs. difference < 1e-6 there)
    atol = 1e-6 if name == "mish" else 1e-7
    np.testing.assert_allclose(y[0], reference.zoo_activate(x, name), rtol=2e-6, atol=atol)


def test_conv_and_maxpool_with_stride_x_and_stride_y(tmp_path):
    body = ("[convolutional]\nfilters=2\nsize=3\nstride_x=2\nstride_y=1\npad=1\nactivation=linear\n\n"
            "[maxpool]\nsize=2\nstride_x=1\nstride_y=2\n")  # fmt: skip
    net = net_from(tmp_path, body, 3, 7, 8)
    x = rand(3, 7, 8)
    conv = net.layers[0]
    y = reference.zoo_conv2d(x, conv.weights.reshape(2, 3, 3, 3), 1, 2, 1)
    y = y + conv.biases[:, None, None]
    assert net.shapes == [(2, 7, 4), (2, 4, 4)]  # maxpool: (7+1-2)/2+1, (4+1-2)/1+1
    want = _maxpool_stride1(y, 2)[:, ::2, :]
    np.testing.assert_allclose(run(net, x), want, rtol=1e-5, atol=1e-5)


def test_implicit_times_a_map_through_scale_channels(tmp_path):
    """YOLOR's implicit_mul in darknet's vocabulary: [implicit] (c,1,1) then [scale_channels]."""
    net = net_from(
        tmp_path, "[empty]\n\n[implicit]\nfilters=3\n\n[scale_channels]\nfrom=0\n", 3, 4, 5
    )
    x = rand(3, 4, 5)
    implicit = net.random_weights(3)[0].reshape(3, 1, 1)
    np.testing.assert_array_equal(run(net, x), x * implicit)
