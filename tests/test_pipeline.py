"""Pipelined loading and batching: same results, in order, loading overlaps inference, and the
`detect` command over many images (directories, globs, lists, broken files, labels)."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from pydarknet import pipeline
from pydarknet.cli import main
from pydarknet.detector import Detector

from .synthetic import NAMES, key, mirror_model, write_images


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return mirror_model(tmp_path_factory.mktemp("pipe"))


@pytest.fixture(scope="module")
def detector(model):
    return Detector(*model, names=NAMES)


@pytest.fixture
def images(tmp_path):
    return write_images(tmp_path / "imgs", 7)


def test_prefetch_keeps_order_and_stays_bounded():
    made = []

    def items():
        for i in range(20):
            made.append(i)
            yield i

    seen = []
    for x in pipeline.prefetch(items(), depth=2):
        time.sleep(0.002)
        assert len(made) - len(seen) <= 4  # queue (2) + one being put + the one handed out
        seen.append(x)
    assert seen == list(range(20))
    assert list(pipeline.prefetch(iter(range(5)), depth=0)) == list(range(5))


def test_prefetch_raises_the_producers_error_and_stops_on_close():
    def bad():
        yield 1
        raise ValueError("boom")

    it = pipeline.prefetch(bad(), 2)
    assert next(it) == 1
    with pytest.raises(ValueError, match="boom"):
        next(it)

    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    before = threading.active_count()
    it = pipeline.prefetch(endless(), 2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    n = len(produced)
    time.sleep(0.3)
    assert len(produced) <= n + 1 and threading.active_count() <= before


@pytest.mark.parametrize("batch,depth", [(1, 2), (3, 2), (2, 0), (8, 1)])
def test_detect_paths_equals_one_by_one(detector, images, batch, depth):
    want = [[key(d) for d in detector.detect_file(p)] for p in images]
    results = list(pipeline.detect_paths(detector, images, batch=batch, depth=depth))
    assert [r.index for r in results] == list(range(len(images)))
    assert [r.source for r in results] == images
    assert [[key(d) for d in r.detections] for r in results] == want
    assert all(r.error is None and r.size == (r.image.shape[1], r.image.shape[0]) for r in results)


def test_a_broken_file_does_not_stop_the_run(detector, images, tmp_path):
    bad = tmp_path / "imgs" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    paths = images[:2] + [str(bad), str(tmp_path / "missing.jpg")] + images[2:4]
    results = list(pipeline.detect_paths(detector, paths, batch=2, keep_images=False))
    assert [r.source for r in results] == paths
    assert [r.error is not None for r in results] == [False, False, True, True, False, False]
    assert "broken.png: cannot read image" in results[2].error
    assert results[0].image is None and results[0].detections


def test_loading_overlaps_inference(detector, images):
    """While image 0 is in the network, the loader thread reads image 1: the fake forward
    below waits for that to happen, which a sequential loop could never satisfy."""
    loaded = {i: threading.Event() for i in range(len(images))}

    def load(det, i, path):
        out = pipeline._load(det, i, path)
        loaded[i].set()
        return out

    class Slow:
        prepare = detector.prepare
        load_image = detector.load_image

        def detect_prepared(self, inputs, sizes):
            first = not loaded[1].is_set() or not hasattr(self, "seen")
            self.seen = True
            if first:
                assert loaded[1].wait(10), "image 1 was not loaded during the forward of image 0"
            return detector.detect_prepared(inputs, sizes)

    results = list(pipeline.detect_paths(Slow(), images, batch=1, depth=2, load=load))
    assert len(results) == len(images)


# -- the detect command over many images ---------------------------------------------------------
def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_directory_glob_and_list_give_the_same(model, images, tmp_path, capsys):
    cfg, weights = model
    folder = str(tmp_path / "imgs")
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(images) + "\n")
    outs = []
    for inputs in ([folder], [folder + "/*.png"], [str(listing)]):
        code, out, err = _run(["detect", str(cfg), *inputs, "--weights", str(weights),
                               "--no-draw", "--json", "--batch", "3"], capsys)  # fmt: skip
        assert code == 0, err
        outs.append(json.loads(out))
        assert "7 images in" in err and "images/s" in err
    assert outs[0] == outs[1] == outs[2]
    assert [f["filename"] for f in outs[0]] == images
    assert sum(len(f["objects"]) for f in outs[0]) > 0
    assert not (tmp_path / "predictions").exists()


def test_cli_runs_one_image_per_thread_unless_told(model, images, tmp_path, capsys, monkeypatch):
    """Several images, no --batch and a small model: a batch of one image per thread
    (Network._forward_images), with the same detections as --batch 1; a model whose buffers per
    image exceed cli.AUTO_BATCH_BYTES runs one image at a time."""
    from pydarknet import cli

    cfg, weights = model
    base = ["detect", str(cfg), str(tmp_path / "imgs"), "--weights", str(weights), "--no-draw",
            "--json", "--threads", "2"]  # fmt: skip
    code, auto, err = _run(base, capsys)
    assert code == 0, err
    assert "(batch 2, pipelined loader)" in err
    code, one, err = _run(base + ["--batch", "1"], capsys)
    assert code == 0 and "(batch 1, pipelined loader)" in err
    assert json.loads(auto) == json.loads(one)
    monkeypatch.setattr(cli, "AUTO_BATCH_BYTES", 1024)  # as if the model were a big one
    code, big, err = _run(base, capsys)
    assert code == 0 and "(batch 1, pipelined loader)" in err
    assert json.loads(big) == json.loads(one)


def test_cli_keeps_going_past_broken_files(model, images, tmp_path, capsys, monkeypatch):
    cfg, weights = model
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "imgs" / "img002.png"
    bad.write_bytes(b"garbage")
    code, out, err = _run(["detect", str(cfg), str(tmp_path / "imgs"), "--weights",
                           str(weights), "--out-dir", "drawn"], capsys)  # fmt: skip
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[-1].startswith("pydarknet: error: 1 of 7 inputs failed")
    assert "img002.png: cannot read image" in lines[-1]
    assert any(ln.startswith("pydarknet: warning:") and "img002.png" in ln for ln in lines)
    # every other image was printed and drawn
    assert out.count(":\n") == 6 and "img002.png" not in out
    drawn = sorted(p.name for p in (tmp_path / "drawn").iterdir())
    assert drawn == [f"img{i:03d}.jpg" for i in range(7) if i != 2]


def test_cli_save_labels(model, images, tmp_path, capsys):
    cfg, weights = model
    code, out, err = _run(["detect", str(cfg), *images[:3], "--weights", str(weights),
                           "--no-draw", "--save-labels", "--thresh", "0.3"], capsys)  # fmt: skip
    assert code == 0, err
    det = Detector(*model, names=NAMES, thresh=0.3)
    from pydarknet.labels import format_labels

    for p in images[:3]:
        text = open(p[:-4] + ".txt").read()
        assert text == format_labels(det.detect_file(p), 0.3)


def test_cli_tta_option(model, images, capsys):
    cfg, weights = model
    code, out, err = _run(["detect", str(cfg), images[0], "--weights", str(weights), "--no-draw",
                           "--json", "--tta"], capsys)  # fmt: skip
    assert code == 0, err
    det = Detector(*model, tta=True)
    got = json.loads(out)[0]["objects"]
    assert got == [d.to_darknet_json() for d in det.detect_file(images[0])]
    assert np.all([o["confidence"] > 0.25 for o in got])


WINOGRAD_CFG = """[net]
width=32
height=32
channels=3

[convolutional]
filters=16
size=1
stride=1
activation=leaky

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[convolutional]
filters=18
size=1
stride=1
activation=linear

[yolo]
mask=0,1
anchors=10,12, 24,20, 40,44
classes=4
num=3
"""


def test_detect_on_one_image_makes_no_winograd_weights(tmp_path, images, monkeypatch, capsys):
    """One image is one forward: the 3x3 layer runs im2col rather than transform its weights
    for Winograd; two images transform them once (the two paths' outputs agree:
    test_kernels.py test_network_without_winograd_matches)."""
    from pydarknet import layers
    from pydarknet.network import Network

    cfg = tmp_path / "wino.cfg"
    cfg.write_text(WINOGRAD_CFG)
    net = Network(cfg)
    weights = net.save_random_weights(tmp_path / "wino.weights")
    assert net.layers[1].winograd_tile((16, 32, 32)) == 4
    made = []
    real = layers.Convolutional._make_winograd_weights
    monkeypatch.setattr(layers.Convolutional, "_make_winograd_weights",
                        lambda self, tile: made.append(tile) or real(self, tile))  # fmt: skip
    base = ["detect", str(cfg), "--weights", str(weights), "--no-draw", "--json", "--names",
            str(tmp_path / "n.names")]  # fmt: skip
    (tmp_path / "n.names").write_text("\n".join(NAMES) + "\n")
    code, out, err = _run(base + [images[0]], capsys)
    assert code == 0, err
    assert made == [] and len(json.loads(out)) == 1
    code, out, err = _run(base + images[:2], capsys)
    assert code == 0, err
    assert made and set(made) == {4}  # called by each image's thread, made under a lock once
    assert len(json.loads(out)) == 2
