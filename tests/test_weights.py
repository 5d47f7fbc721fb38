"""The .weights header (32- vs 64-bit seen), exact float counts, and batch-norm folding."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import pydarknet
from pydarknet.errors import WeightsError
from pydarknet.weights import Header, WeightsReader, write_weights

CFG = "[net]\nwidth=8\nheight=8\nchannels=2\n[convolutional]\nbatch_normalize=1\nfilters=3\nsize=3\npad=1\nactivation=linear\n"


@pytest.mark.parametrize("major,minor,nbytes", [(0, 1, 16), (0, 2, 20), (1, 0, 20), (0, 0, 16)])
def test_header_seen_width(tmp_path, major, minor, nbytes):
    path = tmp_path / "h.weights"
    write_weights(path, [np.arange(5, dtype=np.float32)], Header(major, minor, 7, 123))
    assert path.stat().st_size == nbytes + 20
    r = WeightsReader(path, 5)
    assert (r.header.major, r.header.minor, r.header.revision, r.header.seen) == (major, minor, 7, 123)
    np.testing.assert_array_equal(r.take(5), np.arange(5, dtype=np.float32))
    r.finish()


def test_take_past_the_end_and_leftovers(tmp_path):
    path = tmp_path / "s.weights"
    write_weights(path, [np.ones(4, np.float32)])
    r = WeightsReader(path)
    with pytest.raises(WeightsError, match="ran out of floats at layer 3: needs 5 more after 0 but the file holds 4"):
        r.take(5, "layer 3")
    r.take(3)
    with pytest.raises(WeightsError, match="1 floats left over"):
        r.finish()


def test_short_header(tmp_path):
    path = tmp_path / "x.weights"
    path.write_bytes(b"\0" * 10)
    with pytest.raises(WeightsError, match=r"x\.weights: 10 bytes is too short"):
        WeightsReader(path)


def test_batchnorm_is_folded_like_darknet(tmp_path):
    cfg = tmp_path / "bn.cfg"
    cfg.write_text(CFG)
    net = pydarknet.Network(cfg)
    assert [name for _, name, _ in net.param_spec()] == [
        "biases", "scales", "rolling_mean", "rolling_variance", "weights"]  # darknet's order
    rng = np.random.default_rng(3)
    b, s, m, v = (rng.uniform(0.5, 1.5, 3).astype(np.float32) for _ in range(4))
    w = rng.normal(size=3 * 2 * 9).astype(np.float32)
    path = tmp_path / "bn.weights"
    write_weights(path, [b, s, m, v, w])
    net.load_weights(path)
    x = rng.random((1, 2, 8, 8), dtype=np.float32)
    net.output_layers = [0]
    (y,) = net.forward(x)
    # unfused reference: conv, then (y - mean) / sqrt(var + .00001) * scale + bias (normalize_cpu)
    xp = np.pad(x[0].astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    wk = w.reshape(3, 2, 3, 3).astype(np.float64)
    conv = np.zeros((3, 8, 8))
    for i in range(8):
        for j in range(8):
            conv[:, i, j] = (wk * xp[None, :, i : i + 3, j : j + 3]).sum(axis=(1, 2, 3))
    want = (conv - m[:, None, None]) / np.sqrt(v[:, None, None] + 0.00001) * s[:, None, None]
    want += b[:, None, None]
    np.testing.assert_allclose(y[0], want, rtol=1e-5, atol=1e-5)


def test_take_reads_owned_float32_arrays(tmp_path):
    path = tmp_path / "o.weights"
    write_weights(path, [np.arange(10, dtype=np.float32)])
    with WeightsReader(path, 10) as r:
        a, b = r.take(4), r.take(6)
        r.finish()
    for x in (a, b):  # layers may keep them as their parameters: no views of a file buffer
        assert x.dtype == np.float32 and x.flags.owndata and x.flags.writeable
    np.testing.assert_array_equal(np.concatenate([a, b]), np.arange(10, dtype=np.float32))


_needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a POSIX named pipe")


def _load_through_a_pipe(cfg, weights, tmp_path, **options):
    """pydarknet.load(cfg, a named pipe that a thread fills with the bytes of `weights`)."""
    fifo = tmp_path / "pipe.weights"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(weights.read_bytes()))
    writer.start()
    net = pydarknet.load(cfg, fifo, **options)
    writer.join()
    return net


@_needs_fifo
def test_weights_from_a_pipe(tmp_path):
    """A pipe has no size to check against: it is read whole, then handed out as from a file."""
    cfg = tmp_path / "bn.cfg"
    cfg.write_text(CFG)
    net = pydarknet.Network(cfg)
    path = tmp_path / "bn.weights"
    net.save_random_weights(path)
    other = _load_through_a_pipe(cfg, path, tmp_path)
    np.testing.assert_array_equal(other.layers[0].weights, net.layers[0].weights)


# A 3x3 layer that runs as Winograd F(4x4) at 32x32 (16 channels) and as im2col at 8x8.
WINO = ("[net]\nwidth=32\nheight=32\nchannels=16\n[convolutional]\nbatch_normalize=1\nfilters=8\n"
        "size=3\npad=1\nactivation=leaky\n")  # fmt: skip


def _wino(tmp_path, name="w.weights"):
    cfg = tmp_path / "wino.cfg"
    cfg.write_text(WINO)
    net = pydarknet.Network(cfg)
    net.save_random_weights(tmp_path / name, seed=4)
    return cfg, net


def test_winograd_layers_hold_their_weights_once(tmp_path):
    """Once a forward has made the Winograd transform, the 3x3 weights are freed; asked for
    again (here by an im2col forward at another size) they are read back bit-identical."""
    _, net = _wino(tmp_path)
    layer = net.layers[0]
    before = layer.weights.copy()
    x = np.random.default_rng(1).random((1, 16, 32, 32), dtype=np.float32)
    (y,) = net.forward(x)
    assert layer.winograd_tile((8, 32, 32)) == 4 and layer._weights is None
    np.testing.assert_array_equal(layer.weights, before)  # read back from the file
    small = np.random.default_rng(2).random((1, 16, 8, 8), dtype=np.float32)
    assert layer.winograd_tile((8, 8, 8)) == 0  # im2col: needs the weights themselves
    (y_small,) = net.forward(small)
    fresh = pydarknet.load(tmp_path / "wino.cfg", tmp_path / "w.weights")
    np.testing.assert_array_equal(y_small, fresh.forward(small)[0])
    np.testing.assert_array_equal(y, fresh.forward(x)[0])


@_needs_fifo
def test_weights_from_a_pipe_are_kept(tmp_path):
    cfg, _ = _wino(tmp_path)
    other = _load_through_a_pipe(cfg, tmp_path / "w.weights", tmp_path)
    other.forward(np.zeros((1, 16, 32, 32), np.float32))
    assert other.layers[0]._weights is not None  # a pipe cannot be read again: nothing freed


def test_weights_file_changed_after_loading_is_a_clear_error(tmp_path):
    cfg, net = _wino(tmp_path)
    net.forward(np.zeros((1, 16, 32, 32), np.float32))
    assert net.layers[0]._weights is None
    pydarknet.Network(cfg).save_random_weights(tmp_path / "w.weights", seed=5)  # overwritten
    with pytest.raises(WeightsError, match=r"w\.weights: changed since it was loaded.*\[convolutional\] weights \(.*wino\.cfg:5\)"):
        net.layers[0].weights
    with pytest.raises(WeightsError, match="changed since it was loaded"):
        net.forward(np.zeros((1, 16, 8, 8), np.float32))  # im2col needs them


def test_weights_set_by_hand_replace_the_winograd_transform(tmp_path):
    _, net = _wino(tmp_path)
    x = np.random.default_rng(3).random((1, 16, 32, 32), dtype=np.float32)
    net.forward(x)
    layer = net.layers[0]
    layer.weights = layer.weights * np.float32(2.0)  # leaky is positively homogeneous
    (y,) = net.forward(x)
    fresh = pydarknet.load(tmp_path / "wino.cfg", tmp_path / "w.weights")
    fresh.layers[0].biases = fresh.layers[0].biases * np.float32(0.5)
    (want,) = fresh.forward(x)
    np.testing.assert_allclose(y, 2 * want, rtol=1e-5, atol=1e-5)


# Every kind of convolution a forward may stream: batch-normalised and not, 3x3 at strides 1
# and 2, depthwise, 1x1; with a pool and a concatenating route between them.
STREAM = """[net]
width=32
height=32
channels=3
[convolutional]
batch_normalize=1
filters=16
size=3
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[convolutional]
batch_normalize=1
filters=32
size=3
stride=2
pad=1
activation=mish
[convolutional]
filters=32
size=3
groups=32
pad=1
activation=linear
[convolutional]
batch_normalize=1
filters=16
size=1
activation=leaky
[route]
layers=-1,-3
[convolutional]
filters=18
size=1
activation=linear
"""
_CONVS = [0, 2, 3, 4, 6]


def _stream(tmp_path, **options):
    cfg = tmp_path / "stream.cfg"
    cfg.write_text(STREAM)
    path = tmp_path / "s.weights"
    pydarknet.Network(cfg).save_random_weights(path, seed=7)
    return cfg, path, pydarknet.load(cfg, path, stream=True, **options)


@pytest.mark.parametrize("winograd", [False, True])
def test_streamed_weights_give_the_same_outputs_and_are_freed(tmp_path, winograd):
    """load(stream=True) reads no convolution weights; each forward reads them as its layers
    run and frees them after: outputs bit-identical to a network that holds them, twice."""
    cfg, path, net = _stream(tmp_path, winograd=winograd)
    assert sorted(net.streamed) == _CONVS
    assert all(net.layers[i]._weights is None for i in _CONVS)
    held = pydarknet.load(cfg, path, winograd=winograd)
    x = np.random.default_rng(8).random((1, 3, 32, 32), dtype=np.float32)
    (want,) = held.forward(x)
    for _ in range(2):
        (y,) = net.forward(x)
        np.testing.assert_array_equal(y, want)
        assert all(net.layers[i]._weights is None for i in _CONVS)
    for i in _CONVS:  # read back on demand, folded as at load
        np.testing.assert_array_equal(net.layers[i].weights, held.layers[i].weights)


def test_streamed_forward_holds_no_more_weights_than_the_largest_layer(tmp_path):
    """The read-ahead reads the next layer while one runs only where the two together are no
    larger than the largest layer: as each convolution starts, the weights held (its own, if
    read already, and the next's) never exceed that."""
    _, _, net = _stream(tmp_path, winograd=False)
    most = max(net.streamed.values())
    held = []
    for i in _CONVS:
        layer = net.layers[i]

        def counting(*args, _forward=layer.forward):
            loaded = [n for j, n in net.streamed.items() if net.layers[j]._weights is not None]
            held.append(sum(loaded))
            return _forward(*args)

        layer.forward = counting
    for _ in range(3):
        net.forward(np.zeros((1, 3, 32, 32), np.float32))
    assert len(held) == 3 * len(_CONVS) and max(held) <= most
    assert all(net.layers[i]._weights is None for i in _CONVS)


def test_streamed_batch_matches_one_image_at_a_time(tmp_path):
    """A batch (one image per thread where the pool has several) gives each image's outputs."""
    cfg, path, net = _stream(tmp_path, winograd=False)
    x = np.random.default_rng(9).random((3, 3, 32, 32), dtype=np.float32)
    (y,) = net.forward(x)
    held = pydarknet.load(cfg, path, winograd=False)
    for b in range(3):
        np.testing.assert_array_equal(y[b], held.forward(x[b : b + 1])[0][0])


def test_streamed_weights_file_changed_is_a_clear_error(tmp_path):
    cfg, path, net = _stream(tmp_path, winograd=False)
    pydarknet.Network(cfg).save_random_weights(path, seed=8)  # same size, other floats
    changed = r"s\.weights: changed since it was loaded.*stream\.cfg:5"
    with pytest.raises(WeightsError, match=changed):
        net.forward(np.zeros((1, 3, 32, 32), np.float32))


@_needs_fifo
def test_weights_from_a_pipe_are_not_streamed(tmp_path):
    cfg, path, net = _stream(tmp_path)
    other = _load_through_a_pipe(cfg, path, tmp_path, stream=True)
    assert other.streamed == {}
    x = np.random.default_rng(10).random((1, 3, 32, 32), dtype=np.float32)
    np.testing.assert_array_equal(other.forward(x)[0], net.forward(x)[0])


def test_one_image_detect_streams_its_weights(tmp_path, monkeypatch, capsys):
    """`detect` on one image loads with stream=True (and without Winograd); on two, neither."""
    import cv2

    from pydarknet import network
    from pydarknet.cli import main

    from .test_errors import TINY

    cfg, weights = tmp_path / "tiny.cfg", tmp_path / "tiny.weights"
    cfg.write_text(TINY)
    pydarknet.Network(cfg).save_random_weights(weights)
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.zeros((40, 50, 3), np.uint8))
    seen = []
    real = network.Network.load_weights

    def recording(self, path, stream=False):
        seen.append((stream, self.winograd))
        return real(self, path, stream)

    monkeypatch.setattr(network.Network, "load_weights", recording)
    for images in ([img], [img, img]):
        assert main(["detect", str(cfg), *map(str, images), "--weights", str(weights),
                     "--no-draw", "--json"]) == 0  # fmt: skip
    assert seen == [(True, False), (False, True)]
    runs = capsys.readouterr().out
    assert runs.count('"filename"') == 3


def test_streamed_pruned_network_reads_only_what_its_heads_need(tmp_path, monkeypatch):
    """With heads pruned, the layers only the others need are neither run nor read."""
    from pathlib import Path

    from pydarknet import weights

    cfg = Path(__file__).resolve().parents[1] / "cfg" / "yolov4-tiny.cfg"
    path = tmp_path / "t.weights"
    held = pydarknet.Network(cfg)
    held.winograd = False  # the same sums as the streamed network's
    held.save_random_weights(path, seed=3)
    net = pydarknet.load(cfg, path, winograd=False, stream=True)
    held.prune([0])
    net.prune([0])
    skipped = [i for i in net.streamed if not net.active[i]]
    assert skipped and len(skipped) < len(net.streamed)
    offsets = []
    real = weights.FloatsAt.read

    def read(self, what="weights"):
        offsets.append(self.offset)
        return real(self, what)

    monkeypatch.setattr(weights.FloatsAt, "read", read)
    x = np.random.default_rng(11).random((1, 3, 64, 64), dtype=np.float32)
    (y,) = net.forward(x)
    np.testing.assert_array_equal(y, held.forward(x)[0])
    assert len(offsets) == len(net.streamed) - len(skipped)
    assert not {net.layers[i]._weights_at.offset for i in skipped} & set(offsets)


def test_streamed_weights_file_removed_is_a_clear_error(tmp_path):
    """A file gone before the forward: the read-ahead gives up, the forward names the file."""
    _, path, net = _stream(tmp_path, winograd=False)
    path.unlink()
    gone = r"s\.weights: cannot read the \[convolutional\] weights"
    with pytest.raises(WeightsError, match=gone):
        net.forward(np.zeros((1, 3, 32, 32), np.float32))
