"""The ONNX conversion behind `pydarknet bench --vs onnxruntime`: ONNX Runtime, running the
converted graph, gives Network.forward's outputs; a layer or activation without an ONNX form is
an error naming the layer. (The test extra installs onnx and onnxruntime.)"""

from __future__ import annotations

import numpy as np
import pytest

import pydarknet
from pydarknet import bench
from pydarknet.cli import main
from pydarknet.onnx_export import export

from .conftest import CFG


@pytest.fixture(scope="module", autouse=True)
def _onnxruntime():
    why = bench.onnxruntime_available()
    if why:
        pytest.fail(f"{why}; the test extra installs both")


def _session(net, h, w, threads=1):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(export(net, h, w), options, providers=["CPUExecutionProvider"])


def _same_outputs(net, h, w, batch=1, seed=0):
    x = np.random.default_rng(seed).random((batch, net.channels, h, w), dtype=np.float32)
    ours = net.forward(x)
    theirs = _session(net, h, w).run(None, {"input": x})
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        scale = float(np.abs(a).max())
        assert scale > 0
        np.testing.assert_allclose(b, a, rtol=0, atol=2e-5 * scale)


# Every layer kind and activation the conversion covers, on odd map sizes: maxpool 2x2/2 with
# darknet's one-sided padding, a 5x5/1 SPP pool, route groups and concatenation, shortcut,
# upsample with a scale, grouped, dilated and stride-2 convolutions, dropout, a [yolo] head.
ALL_KINDS = """[net]
width=27
height=23
channels=3

[convolutional]
batch_normalize=1
filters=12
size=3
stride=1
pad=1
activation=mish

[maxpool]
size=2
stride=2

[convolutional]
filters=12
size=3
stride=2
pad=1
activation=swish

[route]
layers=-1
groups=2
group_id=1

[convolutional]
filters=6
size=3
dilation=2
pad=1
activation=relu6

[convolutional]
filters=6
size=3
pad=1
groups=3
activation=elu

[shortcut]
from=-2
activation=leaky

[maxpool]
size=5
stride=1

[route]
layers=-1,-5

[convolutional]
filters=8
size=1
activation=selu

[dropout]
probability=.5

[upsample]
stride=2
scale=0.5

[convolutional]
filters=8
size=1
activation=tanh

[convolutional]
filters=8
size=1
activation=relu

[route]
layers=-1,-13

[convolutional]
filters=18
size=1
activation=logistic

[yolo]
mask=0,1
anchors=10,12, 24,20, 40,44
classes=4
num=3
"""


def test_every_covered_layer_kind_runs_the_same_in_onnxruntime(tmp_path):
    cfg = tmp_path / "kinds.cfg"
    cfg.write_text(ALL_KINDS)
    net = pydarknet.Network(cfg)
    net.load_weights(net.save_random_weights(tmp_path / "kinds.weights"))
    _same_outputs(net, 23, 27, batch=2)


@pytest.mark.parametrize("name,size", [("yolov3-tiny", 96), ("yolov4-tiny", 128),
                                       ("yolov4-csp", 128), ("yolov3-spp", 96)])  # fmt: skip
def test_zoo_models_run_the_same_in_onnxruntime(random_model, name, size):
    net, weights = random_model(CFG / f"{name}.cfg")
    net = pydarknet.load(CFG / f"{name}.cfg", weights)
    _same_outputs(net, size, size)


@pytest.mark.parametrize("section,match", [
    ("[reorg]\nstride=2\n", r"layer 1 \[reorg\]: this layer has no ONNX form"),
    ("[shortcut]\nfrom=-1\nweights_type=per_feature\n", r"layer 1 \[shortcut\]: only an unweighted"),
    ("[convolutional]\nfilters=4\nsize=1\nactivation=hardtan\n", r"layer 1 \[convolutional\]: its activation"),
])  # fmt: skip
def test_what_has_no_onnx_form_is_an_error_naming_the_layer(tmp_path, section, match):
    cfg = tmp_path / "x.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n\n[convolutional]\nfilters=4\nsize=1\n"
                   f"activation=leaky\n\n{section}")  # fmt: skip
    net = pydarknet.Network(cfg)
    net.load_weights(net.save_random_weights(tmp_path / "x.weights"))
    with pytest.raises(pydarknet.DarknetError, match=match):
        export(net, 8, 8)


def test_bench_vs_onnxruntime_prints_its_median_ratio_and_memory(capsys):
    code = main(["bench", str(CFG / "yolov3-tiny.cfg"), "--size", "64x64", "--repeat", "2",
                 "--threads", "1", "--vs", "onnxruntime", "--vs", "opencv", "--memory"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    for engine in ("onnxruntime", "opencv"):
        assert f"  {engine:<11} median" in out
        assert f"(pydarknet / {engine}; < 1 is faster)" in out
        rss = out.split(f"peak RSS   {engine:<11}")[1].split("MB")[0]
        assert float(rss) > 10


def test_bench_vs_onnxruntime_goes_on_alone_when_a_layer_has_no_onnx_form(tmp_path, capsys):
    cfg = tmp_path / "reorg.cfg"
    cfg.write_text("[net]\nwidth=16\nheight=16\nchannels=3\n\n[convolutional]\nfilters=4\n"
                   "size=3\npad=1\nactivation=leaky\n\n[reorg]\nstride=2\n")  # fmt: skip
    code = main(["bench", str(cfg), "--repeat", "2", "--threads", "1", "--vs", "onnxruntime"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "pydarknet  median" in captured.out and "onnxruntime median" not in captured.out
    assert "ONNX Runtime comparison skipped: layer 1 [reorg]" in captured.err
