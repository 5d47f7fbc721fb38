"""The Detector API: same detections as Network.detect, batches, names, threads, labels."""

from __future__ import annotations

import codecs
import threading

import numpy as np
import pytest

import pydarknet
from pydarknet import image
from pydarknet.detector import Detector, read_names
from pydarknet.errors import DarknetError
from pydarknet.labels import format_labels, label_path, read_labels, write_labels

from .conftest import CFG, need_shared
from .synthetic import CLASSES, NAMES, key, mirror_model, scene


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return mirror_model(tmp_path_factory.mktemp("det"))


@pytest.fixture(scope="module")
def detector(model):
    return Detector(*model, names=NAMES)


def test_same_detections_as_network_detect(detector):
    for seed in range(4):
        img = scene(seed)
        got = detector(img)
        want = detector.network.detect(img, 0.25, 0.45, names=NAMES)
        assert len(got) > 0
        # the same (box, class) pairs; Detector lists them in darknet's post-NMS dets order
        assert sorted(map(key, got)) == sorted(map(key, want))
        assert all(a.box_id <= b.box_id for a, b in zip(got, got[1:]))
        assert all(isinstance(d, pydarknet.Detection) for d in got)


def test_matches_darknet_on_the_sample_image():
    weights = need_shared("weights", "yolov3-tiny.weights")
    det = Detector(CFG / "yolov3-tiny.cfg", weights)
    dets = det.detect_file(need_shared("images", "dog.jpg"))
    assert {d.name for d in dets} >= {"dog", "bicycle"}
    assert det.names[16] == "dog"  # 80 classes: COCO names by default


def test_batch_gives_the_same_as_one_by_one(detector):
    images = [scene(s, *hw) for s, hw in enumerate([(48, 64), (64, 64), (33, 57), (70, 20)])]
    one = [detector(im) for im in images]
    batch = detector.detect_batch(images)
    assert [[key(d) for d in x] for x in batch] == [[key(d) for d in x] for x in one]
    assert detector.detect_batch([]) == []


def test_thresholds_and_names(model, tmp_path):
    names_file = tmp_path / "x.names"
    names_file.write_text("a\nb\nc\nd\n")
    low = Detector(*model, names=names_file, thresh=0.1)
    high = Detector(low.network, names=["w", "x", "y", "z"], thresh=0.5)
    img = scene(1)
    assert {d.name for d in low(img)} <= set("abcd")
    assert all(d.confidence > 0.5 for d in high(img))
    assert len(high(img)) < len(low(img))
    assert Detector(low.network).names == [str(k) for k in range(CLASSES)]
    data = tmp_path / "x.data"
    data.write_text("classes = 4\nnames = x.names\n")
    assert read_names(data) == list("abcd")
    with pytest.raises(DarknetError, match="2 class names given for 4 classes"):
        Detector(low.network, names=["a", "b"])
    with pytest.raises(DarknetError, match=r"x\.names: has 4 names but the model has 5"):
        read_names(names_file, 5)


def test_text_files_with_a_byte_order_mark(tmp_path):
    """A .names, .data, label or list file saved by a Windows editor with a UTF-8 mark (or as
    UTF-16) reads as the same text; the first name is not '\ufeffa'."""
    (tmp_path / "x.names").write_bytes(codecs.BOM_UTF8 + b"a\r\nb\r\n")
    assert read_names(tmp_path / "x.names") == ["a", "b"]
    (tmp_path / "x.data").write_bytes("classes=2\nnames=x.names\n".encode("utf-16"))
    assert read_names(tmp_path / "x.data") == ["a", "b"]
    (tmp_path / "pic.txt").write_bytes(codecs.BOM_UTF8 + b"1 0.5 0.5 0.2 0.2\n")
    np.testing.assert_allclose(read_labels(tmp_path / "pic.txt", 2), [[1, 0.5, 0.5, 0.2, 0.2]])


def test_not_a_detector(tmp_path):
    cfg = tmp_path / "c.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n\n[convolutional]\nfilters=2\nsize=1\n")
    net = pydarknet.Network(cfg)
    net.save_random_weights(tmp_path / "c.weights")
    with pytest.raises(DarknetError, match="not a detector"):
        Detector(net)
    with pytest.raises(DarknetError, match="no weights"):
        Detector(pydarknet.Network(CFG / "yolov3-tiny.cfg"))


def test_one_instance_is_safe_to_share_between_threads(detector):
    """The claim in the Detector docstring: concurrent calls give the sequential results."""
    images = [scene(s, 40 + 3 * s, 64 - 2 * s) for s in range(6)]
    want = [[key(d) for d in detector(im)] for im in images]
    errors: list = []
    barrier = threading.Barrier(4)

    def work(t):
        try:
            barrier.wait()
            for rep in range(3):
                for i in range(len(images)):
                    j = (i + t + rep) % len(images)
                    got = [key(d) for d in detector(images[j])]
                    if got != want[j]:
                        errors.append((t, j))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


def test_repr_and_sizes(detector):
    assert (detector.width, detector.height, detector.classes) == (64, 64, CLASSES)
    assert "64x64" in repr(detector) and "4 classes" in repr(detector)


# -- darknet label files ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "path,want",
    [
        ("data/obj/img1.jpg", "data/obj/img1.txt"),
        ("coco/images/val2017/000139.jpg", "coco/labels/val2017/000139.txt"),
        ("VOC/VOC2007/JPEGImages/0001.JPEG", "VOC/VOC2007/labels/0001.txt"),
        ("a/b.png", "a/b.txt"),
        ("a/b.webp", "a/b.txt"),  # darknet keeps .webp (and warns); we never overwrite images
        ("x/images/other/b.bmp", "x/images/other/b.txt"),
    ],
)
def test_label_path_is_darknets(path, want):
    assert label_path(path) == want


def test_labels_round_trip_in_darknets_format(detector, tmp_path):
    img_path = tmp_path / "pic.png"
    img = scene(4)
    image.save_image(img_path, img)
    dets = detector(img)
    written = write_labels(img_path, dets, detector.thresh)
    assert written == str(tmp_path / "pic.txt")
    text = (tmp_path / "pic.txt").read_text()
    boxes = {d.box_id for d in dets}
    assert len(text.splitlines()) == len(boxes)
    first = text.splitlines()[0].split()
    assert len(first) == 5 and all(len(v.split(".")[1]) == 4 for v in first[1:])  # %2.4f
    rows = read_labels(tmp_path / "pic.txt", CLASSES)
    best = {}
    for d in dets:  # per box its best class, the first on ties
        if d.box_id not in best or d.confidence > best[d.box_id].confidence:
            best[d.box_id] = d
    np.testing.assert_allclose(rows[:, 1:], [[d.x, d.y, d.w, d.h] for d in best.values()],
                               atol=5e-5)  # fmt: skip
    assert rows[:, 0].tolist() == [d.class_id for d in best.values()]
    assert format_labels([], 0.25) == ""


def test_bad_label_files(tmp_path):
    assert read_labels(tmp_path / "missing.txt").shape == (0, 5)  # darknet: no objects
    bad = tmp_path / "bad.txt"
    bad.write_text("0 0.5 0.5 0.2 0.2\n1 0.5 oops 0.2\n")
    with pytest.raises(DarknetError, match=r"bad\.txt:2: '1 0\.5 oops 0\.2': expected"):
        read_labels(bad)
    bad.write_text("7 0.5 0.5 0.2 0.2\n")
    with pytest.raises(DarknetError, match=r"bad\.txt:1: class id 7 is out of range for 4"):
        read_labels(bad, 4)


def test_one_channel_network_reads_images_as_darknet(tmp_path, capsys):
    """[net] channels=1: darknet's load_image_cv(path, 1) is imread(IMREAD_GRAYSCALE); a BGR
    array given to detect() is converted with cvtColor; the CLI draws in colour on the gray."""
    import cv2

    from pydarknet.cli import main
    from pydarknet.weights import write_weights

    from .synthetic import MIRROR_CFG

    cfg = tmp_path / "g.cfg"
    cfg.write_text(MIRROR_CFG.replace("channels=3", "channels=1"))
    net = pydarknet.Network(cfg)
    write_weights(tmp_path / "g.weights", net.random_weights(1))
    det = Detector(cfg, tmp_path / "g.weights", thresh=0.05)
    path = tmp_path / "scene.png"
    cv2.imwrite(str(path), scene(3))
    from_file = det.detect_file(path)
    assert from_file and sorted(map(key, from_file)) == sorted(
        map(key, det.detect(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))))
    assert det.detect(scene(3))  # BGR in memory: converted to gray
    out = tmp_path / "out"
    assert main(["detect", str(cfg), str(path), "--weights", str(tmp_path / "g.weights"),
                 "--thresh", "0.05", "--out-dir", str(out)]) == 0  # fmt: skip
    assert "scene.png:" in capsys.readouterr().out
    assert cv2.imread(str(out / "scene.jpg")).shape == (48, 64, 3)
    cfg.write_text(MIRROR_CFG.replace("channels=3", "channels=4"))
    write_weights(tmp_path / "g4.weights", pydarknet.Network(cfg).random_weights(1))
    four = Detector(cfg, tmp_path / "g4.weights")
    with pytest.raises(pydarknet.DarknetError, match="networks of 1 or 3 channels"):
        four.detect(scene(3))


def test_paths_are_images_too(detector, tmp_path):
    """detect(), __call__, detect_batch() and Network.detect() take a file path as well."""
    import cv2

    path = tmp_path / "s.png"
    cv2.imwrite(str(path), scene(5))
    want = sorted(map(key, detector.detect_file(path)))
    assert want and sorted(map(key, detector(str(path)))) == want
    assert [sorted(map(key, x)) for x in detector.detect_batch([path, scene(5)])] == [want] * 2
    net_dets = detector.network.detect(path, 0.25, 0.45, names=NAMES)
    assert sorted(map(key, net_dets)) == want
    with pytest.raises(ValueError, match="expected an image .* got int"):
        detector(7)
    with pytest.raises(pydarknet.DarknetError, match=r"nope\.png: cannot read image"):
        detector(tmp_path / "nope.png")
