"""pydarknet.image against loop ports of darknet's image.c, plus loading, drawing and saving."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pydarknet import image
from pydarknet.errors import ImageError
from pydarknet.postprocess import Detection

from . import reference


def _rand(c, h, w, seed=0):
    return np.random.default_rng(seed).random((c, h, w), dtype=np.float32)


# (C, H, W) -> (w, h): sizes 1, 2, 3, 5, 7, up and down, non-square, identity
RESIZES = [
    ((3, 1, 1), (5, 4)),
    ((3, 2, 3), (7, 5)),
    ((3, 3, 2), (2, 3)),
    ((2, 5, 7), (3, 2)),
    ((2, 5, 7), (11, 13)),
    ((3, 7, 5), (5, 7)),  # identity
    ((1, 1, 5), (4, 3)),
    ((1, 5, 1), (3, 4)),
    ((1, 4, 4), (1, 1)),
    ((1, 6, 9), (1, 4)),
    ((1, 6, 9), (4, 1)),
    ((3, 13, 17), (20, 9)),
    ((3, 37, 53), (30, 41)),
    ((1, 3, 4), (2, 42)),  # (42-1)*h_scale rounds below 2: darknet's dark last row
]


@pytest.mark.parametrize("shape, size", RESIZES)
def test_resize_matches_darknet_loops(shape, size):
    im = _rand(*shape)
    got = image.resize_image(im, *size)
    assert got.dtype == np.float32 and got.shape == (shape[0], size[1], size[0])
    np.testing.assert_array_equal(got, reference.resize_image(im, *size))


def test_resize_keeps_darknets_last_row_quirk():
    # float h_scale = 2/41; 41*h_scale = 1.9999999 -> iy = 1, dy ~ 1, and the last row gets no
    # dy*part[iy+1] term: darknet's last row is ~0 instead of the bottom row of the image.
    im = np.ones((1, 3, 4), np.float32)
    out = image.resize_image(im, 4, 42)
    assert np.all(out[0, :-1] == 1.0)
    assert np.all(out[0, -1] < 1e-6)


def test_resize_identity_is_a_copy():
    im = _rand(3, 4, 5)
    out = image.resize_image(im, 5, 4)
    np.testing.assert_array_equal(out, im)
    assert out is not im and not np.shares_memory(out, im)


def test_resize_larger_downscale_matches_twin():
    im = _rand(3, 108, 192, seed=3)
    got = image.resize_image(im, 61, 37)
    np.testing.assert_array_equal(got, reference.resize_image(im, 61, 37))


@pytest.mark.parametrize(
    "shape, size",
    [((3, 7, 5), (8, 8)), ((3, 5, 9), (8, 8)), ((3, 10, 10), (8, 6)), ((1, 6, 6), (6, 6)),
     ((2, 3, 11), (7, 9)), ((3, 9, 4), (13, 5))],
)  # fmt: skip
def test_letterbox_matches_darknet_loops(shape, size):
    im = _rand(*shape, seed=1)
    got = image.letterbox_image(im, *size)
    assert got.dtype == np.float32 and got.shape == (shape[0], size[1], size[0])
    np.testing.assert_array_equal(got, reference.letterbox_image(im, *size))


def test_letterbox_pads_with_half_grey():
    im = np.zeros((3, 4, 8), np.float32)  # wide: 8x4 into 8x8 -> 8x4 band, 2 rows each side
    out = image.letterbox_image(im, 8, 8)
    assert np.all(out[:, :2] == 0.5) and np.all(out[:, 6:] == 0.5)
    assert np.all(out[:, 2:6] == 0.0)


def test_to_planar_rgb_is_rgb_over_255():
    bgr = np.random.default_rng(2).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    out = image.to_planar_rgb(bgr)
    assert out.dtype == np.float32 and out.shape == (3, 4, 5)
    for k in range(3):
        want = bgr[:, :, 2 - k].astype(np.float32) / np.float32(255)
        np.testing.assert_array_equal(out[k], want)


@pytest.mark.parametrize("letterbox", [False, True])
@pytest.mark.parametrize("h,w,net_w,net_h", [(30, 50, 32, 24), (24, 32, 32, 24), (7, 5, 32, 24),
                                             (1, 1, 9, 6), (1, 13, 8, 8), (13, 1, 8, 8),
                                             (40, 9, 1, 1), (9, 40, 12, 1), (61, 77, 16, 40),
                                             (3, 4, 4, 42)])  # fmt: skip  # last: the row quirk
def test_prepare_matches_darknets_loops(letterbox, h, w, net_w, net_h):
    """prepare's one compiled pass (kernels.resize_bgr) against the C loops' port: down- and
    upscaling, one-pixel images and inputs, the identity size, both letterbox orientations."""
    bgr = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = image.prepare(bgr, net_w, net_h, letterbox)
    assert out.dtype == np.float32 and out.shape == (3, net_h, net_w)
    im = image.to_planar_rgb(bgr)
    twin = reference.letterbox_image if letterbox else reference.resize_image
    np.testing.assert_array_equal(out, twin(im, net_w, net_h))
    np.testing.assert_array_equal(out, image.prepare(bgr[:, ::1], net_w, net_h, letterbox))


def test_prepare_takes_a_strided_view_and_refuses_other_images():
    big = np.random.default_rng(3).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    view = big[::2, 3:25]  # not contiguous
    want = reference.resize_image(image.to_planar_rgb(np.ascontiguousarray(view)), 16, 12)
    np.testing.assert_array_equal(image.prepare(view, 16, 12, False), want)
    with pytest.raises(ValueError, match="BGR uint8"):
        image.prepare(big.astype(np.float32), 16, 12, False)
    with pytest.raises(ValueError, match="BGR uint8"):
        image.prepare(np.dstack([big, big[:, :, :1]]), 16, 12, False)  # BGRA


@pytest.mark.parametrize("letterbox", [False, True])
def test_prepare_gray_for_one_channel_networks(letterbox):
    """A gray (h, w) image, as a channels=1 network gets it: the same resize on one plane."""
    gray = np.random.default_rng(8).integers(0, 256, (30, 50), dtype=np.uint8)
    out = image.prepare(gray, 32, 24, letterbox)
    assert out.dtype == np.float32 and out.shape == (1, 24, 32) and out.flags.c_contiguous
    twin = reference.letterbox_image if letterbox else reference.resize_image
    np.testing.assert_array_equal(out, twin(image.to_planar_rgb(gray), 32, 24))


def test_to_channels_and_gray_loading(tmp_path):
    bgr = np.random.default_rng(9).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    path = tmp_path / "c.png"
    image.save_image(path, bgr)
    gray = image.load_image(path, channels=1)  # darknet: imread(IMREAD_GRAYSCALE) for net.c=1
    assert gray.shape == (6, 7) and gray.dtype == np.uint8
    np.testing.assert_array_equal(gray, cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
    # cvtColor of the colour decode (what an in-memory BGR image gets) rounds differently
    converted = image.to_channels(bgr, 1)
    assert converted.shape == (6, 7) and np.abs(converted.astype(int) - gray).max() <= 2
    assert image.to_channels(gray, 3).shape == (6, 7, 3)
    assert image.to_channels(bgr, 3) is bgr and image.to_channels(gray, 1) is gray
    with pytest.raises(ImageError, match="networks of 1 or 3 channels, this one has 4"):
        image.to_channels(bgr, 4)
    drawn = image.draw_detections(gray, [])
    assert drawn.shape == (6, 7, 3)


def test_load_image_reads_png(tmp_path):
    bgr = np.random.default_rng(5).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    image.save_image(path, bgr)  # PNG is lossless
    got = image.load_image(path)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, bgr)


def test_load_image_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.jpg"
    with pytest.raises(ImageError, match=r"nope\.jpg: cannot read image \(no such file\)"):
        image.load_image(path)


def test_load_image_text_file_names_the_path(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_text("this is not a JPEG\n")
    with pytest.raises(ImageError, match=r"x\.jpg: cannot read image"):
        image.load_image(path)


@pytest.mark.parametrize("kind", ["empty", "dir"])
def test_load_image_empty_or_directory(tmp_path, kind):
    path = tmp_path / "y.png"
    path.mkdir() if kind == "dir" else path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"y\.png: cannot read image"):
        image.load_image(path)


def _det(class_id, conf, x, y, w, h, box_id, name=None, iw=64, ih=48):
    return Detection(class_id, name or str(class_id), conf, x, y, w, h, iw, ih, box_id)


def test_draw_detections_returns_a_new_drawn_image():
    bgr = np.full((48, 64, 3), 128, np.uint8)
    before = bgr.copy()
    dets = [_det(0, 0.9, 0.5, 0.5, 0.4, 0.5, 0), _det(2, 0.4, 0.5, 0.5, 0.4, 0.5, 0),
            _det(1, 0.7, 0.1, 0.9, 0.5, 0.5, 1)]  # fmt: skip
    out = image.draw_detections(bgr, dets, ["a", "b", "c"])
    assert out.shape == bgr.shape and out.dtype == np.uint8
    assert (out != bgr).any()
    np.testing.assert_array_equal(bgr, before)  # input untouched


def test_draw_detections_box_edges_follow_darknet():
    bgr = np.zeros((100, 200, 3), np.uint8)
    # left = (0.3 - 0.1)*200 = 40, right = 80, top = (0.5-0.2)*100 = 30, bot = 70; width 1
    out = image.draw_detections(bgr, [_det(0, 0.9, 0.3, 0.5, 0.2, 0.4, 0, "a", 200, 100)], ["a"])
    color = image.class_color(0, 1)
    assert tuple(out[70, 60]) == color and tuple(out[50, 40]) == color
    assert tuple(out[50, 80]) == color and tuple(out[50, 60]) == (0, 0, 0)


def test_draw_detections_without_detections_is_a_copy():
    bgr = np.zeros((8, 8, 3), np.uint8)
    out = image.draw_detections(bgr, [], None)
    np.testing.assert_array_equal(out, bgr)
    assert out is not bgr


def test_class_color_uses_darknet_get_color():
    # coco "person" (class 0, 80 classes): offset 0 -> colors[0] = (1,0,1) -> magenta
    assert image.class_color(0, 80) == (255, 0, 255)
    assert all(0 <= v <= 255 for k in range(80) for v in image.class_color(k, 80))


def test_save_image_round_trip_and_errors(tmp_path):
    bgr = np.random.default_rng(6).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    path = tmp_path / "out.png"
    image.save_image(path, bgr)
    np.testing.assert_array_equal(image.load_image(path), bgr)
    with pytest.raises(ImageError, match=r"out\.nosuchformat: cannot write image"):
        image.save_image(tmp_path / "out.nosuchformat", bgr)
    with pytest.raises(ImageError, match=r"missing.dir.*cannot write image"):
        image.save_image(tmp_path / "missing_dir" / "a.png", bgr)
