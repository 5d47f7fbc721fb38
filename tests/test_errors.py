"""Bad input: one `pydarknet: error: ...` line naming file:line/option or byte counts, exit 1."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import pydarknet
from pydarknet.cli import main

from .conftest import CFG

TINY = """[net]
width=64
height=64
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
filters=18
size=1
stride=1
pad=1
activation=linear

[yolo]
mask=0,1
anchors=10,14, 23,27, 37,58
classes=4
num=3
"""


def run(argv, capsys) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pydarknet: error: "), err
    return err[0]


@pytest.fixture
def tiny(tmp_path):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    net = pydarknet.Network(cfg)
    weights = tmp_path / "tiny.weights"
    net.save_random_weights(weights)
    img = tmp_path / "img.png"
    import cv2

    cv2.imwrite(str(img), np.zeros((40, 50, 3), np.uint8))
    return cfg, weights, img


def test_tiny_cfg_detects(tiny, capsys):
    cfg, weights, img = tiny
    assert main(["detect", str(cfg), str(img), "--weights", str(weights), "--no-draw"]) == 0


def test_truncated_weights(tiny, capsys):
    cfg, weights, img = tiny
    data = weights.read_bytes()
    weights.write_bytes(data[:-40])
    msg = run(["detect", str(cfg), str(img), "--weights", str(weights)], capsys)
    need = (len(data) - 20) // 4
    assert f"holds {need - 10:,} floats" in msg and f"needs {need:,}" in msg
    assert str(weights) in msg and "tiny.cfg" in msg


def test_oversized_weights(tiny, capsys):
    cfg, weights, img = tiny
    weights.write_bytes(weights.read_bytes() + b"\0" * 8)
    msg = run(["detect", str(cfg), str(img), "--weights", str(weights)], capsys)
    assert "floats" in msg and "do the .cfg and .weights match" in msg


def test_weights_not_a_multiple_of_four(tiny, capsys):
    cfg, weights, img = tiny
    weights.write_bytes(weights.read_bytes() + b"\0")
    msg = run(["detect", str(cfg), str(img), "--weights", str(weights)], capsys)
    assert "not a whole number of float32" in msg


@pytest.mark.parametrize(
    "old,new,expect",
    [
        ("[maxpool]", "[deconvolutional]", r"tiny.cfg:14: unknown section \[deconvolutional\]"),
        ("filters=8", "filtrs=8", r"tiny.cfg:8: \[convolutional\] filtrs=8: unknown option; did you mean filters="),
        ("activation=leaky", "activation=lekay", r"tiny.cfg:12: \[convolutional\] activation=lekay: unknown activation"),
        ("size=2\nstride=2", "size=2\nstride=two", r"tiny.cfg:16: \[maxpool\] stride=two: 'two' is not a number"),
        ("mask=0,1", "mask=0,5", r"tiny.cfg:\d+: \[yolo\] mask=0,5: index 5 is out of range for 3 anchors"),
        ("filters=18", "filters=17", r"\[yolo\] classes=4: the previous layer gives 17 channels"),
    ],
)  # fmt: skip
def test_cfg_errors(tiny, capsys, old, new, expect):
    cfg, weights, img = tiny
    cfg.write_text(TINY.replace(old, new, 1))
    msg = run(["detect", str(cfg), str(img), "--weights", str(weights)], capsys)
    import re

    assert re.search(expect, msg), msg


def test_route_index_out_of_range(tiny, capsys):
    cfg, weights, img = tiny
    cfg.write_text(TINY.replace("[maxpool]", "[route]\nlayers=-5\n\n[maxpool]"))
    msg = run(["detect", str(cfg), str(img), "--weights", str(weights)], capsys)
    assert "tiny.cfg:15: [route] layers=-5: layer -5 is out of range" in msg


def test_route_absolute_zero_is_layer_zero(tiny):
    cfg, _, _ = tiny
    cfg.write_text(TINY.replace("[maxpool]", "[route]\nlayers=0\n\n[maxpool]"))
    net = pydarknet.Network(cfg)
    assert net.layers[1].inputs == [0]  # darknet: 0 or positive is absolute, not relative


def test_non_image_file(tiny, capsys, tmp_path):
    cfg, weights, _ = tiny
    bogus = tmp_path / "notes.jpg"
    bogus.write_text("this is not a picture")
    msg = run(["detect", str(cfg), str(bogus), "--weights", str(weights)], capsys)
    assert str(bogus) in msg


@pytest.mark.parametrize("which", ["cfg", "weights", "image"])
def test_missing_files(tiny, capsys, tmp_path, which):
    cfg, weights, img = tiny
    missing = tmp_path / "nope" / f"missing.{which}"
    args = {"cfg": cfg, "weights": weights, "image": img}
    args[which] = missing
    msg = run(["detect", str(args["cfg"]), str(args["image"]), "--weights", str(args["weights"])],
              capsys)  # fmt: skip
    assert str(missing) in msg


def test_missing_default_weights_says_where_to_get_them(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    msg = run(["detect", str(CFG / "yolov4-tiny.cfg"), "x.jpg"], capsys)
    assert "weights/yolov4-tiny.weights" in msg and "download_weights.py yolov4-tiny" in msg


def test_a_broken_cfg_is_reported_before_missing_default_weights(tiny, capsys, tmp_path,
                                                                 monkeypatch):  # fmt: skip
    """Without --weights and without weights/<stem>.weights, the cfg's own error comes first:
    fetching weights would not make it run."""
    cfg, _, img = tiny
    monkeypatch.chdir(tmp_path)
    cfg.write_text(TINY.replace("filters=18", "filters=17", 1))
    msg = run(["detect", str(cfg), str(img)], capsys)
    assert "[yolo] classes=4: the previous layer gives 17 channels" in msg
    cfg.write_text(TINY)
    assert "no weights given" in run(["detect", str(cfg), str(img)], capsys)


def test_input_size_that_does_not_fit():
    net = pydarknet.Network(CFG / "yolov4-tiny.cfg")
    assert net.infer_shapes(320, 416)[-1] == (255, 20, 26)  # strides divide it: fine
    with pytest.raises(pydarknet.DarknetError, match=r"input size 400x400 does not fit.*route"):
        net.infer_shapes(400, 400)


def test_console_entry_point_exit_code(tiny):
    cfg, weights, _ = tiny
    proc = subprocess.run([sys.executable, "-m", "pydarknet", "detect", str(cfg), "missing.png",
                           "--weights", str(weights)], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("pydarknet: error: missing.png")
    assert proc.stdout == ""


def test_closed_stdout_pipe_is_quiet(tiny):
    cfg, weights, img = tiny
    proc = subprocess.Popen([sys.executable, "-m", "pydarknet", "detect", str(cfg),
                             *[str(img)] * 40, "--weights", str(weights), "--no-draw",
                             "--thresh", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    proc.stdout.read(10)
    proc.stdout.close()  # like `| head -c 10`
    err = proc.stderr.read().decode()
    assert proc.wait() in (0, 141)
    assert "Traceback" not in err, err


def test_net_keys_darknet_reads_for_training_are_not_reported(tmp_path):
    cfg = tmp_path / "t.cfg"
    cfg.write_text(TINY.replace("channels=3", "channels=3\npolicy=sgdr\nsgdr_cycle=1000\n"
                                "sgdr_mult=2\nlearning_rate_min=0.00001\nadam=1\nB1=0.9\nB2=0.999\n"
                                "eps=0.000001\nscale=0.96\nseq_scales=1\n"))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pydarknet.Network(cfg)


def test_flat_net_input_says_what_is_missing(tmp_path):
    cfg = tmp_path / "t.cfg"
    cfg.write_text("[net]\ninputs=256\n\n[gru]\noutput=256\n")
    with pytest.raises(pydarknet.CfgError, match=r"t\.cfg:1: \[net\] width, height and channels "
                       r"must be set and positive; a flat \[net\] inputs= \(recurrent"):
        pydarknet.Network(cfg)


def test_silu_says_it_is_swish(tiny):
    cfg = tiny[0]
    cfg.write_text(TINY.replace("activation=leaky", "activation=silu"))
    with pytest.raises(pydarknet.CfgError, match=r"activation=silu: unknown activation; silu is "
                       r"darknet's swish"):
        pydarknet.Network(cfg)


def test_detect_names_a_network_images_cannot_feed(tiny, capsys):
    cfg, weights, img = tiny
    cfg.write_text(TINY.replace("channels=3", "channels=4"))
    pydarknet.Network(cfg).save_random_weights(weights, 1)
    msg = run(["detect", str(cfg), str(img), "--weights", str(weights)], capsys)
    assert re.search(r"tiny\.cfg: \[net\] channels=4: images go to networks of 1 \(gray\) or 3",
                     msg), msg  # fmt: skip
