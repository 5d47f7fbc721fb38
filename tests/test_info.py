"""`pydarknet info`: darknet's "Total BFLOPS" for every cfg in ../shared/cfg, and the parameter
count (floats in the .weights file).

Darknet sums each layer's l.bflops (a float) into a float: [convolutional] 2*n*c/groups*k*k*
out_h*out_w (the stride-1 host conv when antialiased), [maxpool]/[local_avgpool]
size*size*c*out_h*out_w, [shortcut] out_w*out_h*out_c*len(from) (x2 with weights_type); every
other layer adds 0 (make_*_layer in convolutional_layer.c, maxpool_layer.c, shortcut_layer.c).

PUBLISHED totals were printed by the Darknet binary itself in public logs and issue threads
(found with the search tool: "Total BFLOPS 128.459", "Total BFLOPS 6.910", ...). The others are
COMPUTED with those formulas; README/paper roundings agree where they exist (yolov4-csp at
640: "120 BFlops", yolov7-tiny: "5.8 BFlops", yolov4-tiny: 6.9 in Scaled-YOLOv4's Table 9).
"""

from __future__ import annotations

import re

import pytest

import pydarknet
from pydarknet.cli import main

from .conftest import CFG, SHARED

ZOO = SHARED / "cfg"

# cfg stem -> (width x height, Total BFLOPS at the cfg's own size)
PUBLISHED = {
    "yolov4": 128.459,  # AlexeyAB/darknet logs (detector test cfg/yolov4.cfg)
    "yolov4-tiny": 6.910,
    "yolov3": 65.879,
    "yolov3-tiny": 5.571,
    "yolov2": 29.475,
}
COMPUTED = {
    "csdarknet53-omega": 13.071, "cspx-p7-mish": 1600.719, "darknet53": 18.576,
    "efficientnet_b0": 0.915, "enet-coco": 3.731, "yolov2-tiny": 5.412, "yolov3-spp": 141.531,
    "yolov3-tiny-prn": 3.467, "yolov4-csp-swish": 120.317, "yolov4-csp": 77.003,
    "yolov4-p5": 326.809, "yolov4-p6": 717.190, "yolov4-sam-mish-csp-reorg-bfm": 84.320,
    "yolov4-tiny-3l": 17.741, "yolov4x-mish": 221.986, "yolov7-tiny": 5.802, "yolov7": 104.580,
}  # fmt: skip
# other input sizes darknet was run at (published): yolov4 at 512 and 416
RESIZED = [("yolov4", 512, 91.095), ("yolov4", 416, 60.137), ("yolov4-csp", 640, 120.317)]

# floats after the header of the official .weights files (file size - 20 bytes, / 4;
# yolov2.weights has a 16-byte header), i.e. the parameter count info prints
PARAMS = {
    "yolov4-tiny": 6_062_814, "yolov4": 64_429_405, "yolov3": 62_001_757,
    "yolov3-tiny": 8_858_734, "yolov2": 50_983_561, "yolov4-csp": 52_986_205,
    "yolov4x-mish": 99_847_037, "yolov4-p5": 70_917_468, "yolov4-p6": 127_717_040,
    "yolov7": 36_974_557, "yolov7-tiny": 6_241_885,
}  # fmt: skip


def cfg_path(stem: str):
    path = ZOO / f"{stem}.cfg"
    if not path.exists():
        pytest.skip(f"../shared not found: {path} is needed")
    return path


def net_of(stem: str):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sam-mish's [yolo] beta1: unused in darknet too
        return pydarknet.Network(cfg_path(stem))


def test_every_shared_cfg_has_a_total():
    if not ZOO.is_dir():
        pytest.skip("../shared not found")
    assert {p.stem for p in ZOO.glob("*.cfg")} == set(PUBLISHED) | set(COMPUTED)


@pytest.mark.parametrize("stem,total", sorted({**PUBLISHED, **COMPUTED}.items()))
def test_total_bflops(stem, total):
    assert f"{net_of(stem).bflops():5.3f}" == f"{total:5.3f}"


@pytest.mark.parametrize("stem,size,total", RESIZED)
def test_total_bflops_at_other_sizes(stem, size, total):
    assert f"{net_of(stem).bflops((size, size)):5.3f}" == f"{total:5.3f}"


@pytest.mark.parametrize("stem,n", sorted(PARAMS.items()))
def test_parameter_count_is_the_weights_file(stem, n):
    assert net_of(stem).num_params() == n


def test_non_conv_layers_count_like_darknet():
    """yolov4-tiny: 6.908 from its convolutions alone; its 3 maxpools add what darknet adds."""
    net = pydarknet.Network(CFG / "yolov4-tiny.cfg")
    per_layer = net.layer_bflops()
    pools = [bf for layer, bf in zip(net.layers, per_layer) if layer.KIND == "max"]
    assert pools == pytest.approx([2 * 2 * 128 * 52 * 52 / 1e9, 2 * 2 * 256 * 26 * 26 / 1e9,
                                   2 * 2 * 512 * 13 * 13 / 1e9], rel=1e-6)  # fmt: skip
    conv_only = sum(bf for layer, bf in zip(net.layers, per_layer) if layer.KIND == "conv")
    assert f"{conv_only:.3f}" == "6.908"


def test_info_command_prints_darknets_table(capsys):
    assert main(["info", str(CFG / "yolov4-tiny.cfg")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == ["Total BFLOPS 6.910", "Parameters 6,062,814"]
    rows = {int(line.split()[0]): line for line in out if re.match(r"\s*\d+ ", line)}
    assert len(rows) == 38
    assert re.search(
        r"conv\s+32\s+3 x 3/ 2\s+416 x 416 x   3 ->  208 x 208 x  32 0\.075 BF", rows[0]
    )
    assert re.search(r"route\s+2 1/2\s+104 x 104 x  64 ->  104 x 104 x  32$", rows[3])
    assert re.search(r"max\s+2 x 2/ 2\s+104 x 104 x 128 ->   52 x  52 x 128 0\.001 BF", rows[9])
    assert re.search(r"yolo .* 13 x  13 x 255 ->   13 x  13 x 255$", rows[30])


def test_info_size_option(capsys):
    assert main(["info", str(CFG / "yolov4.cfg"), "--size", "512x512"]) == 0
    assert capsys.readouterr().out.splitlines()[-2] == "Total BFLOPS 91.095"
    assert main(["info", str(CFG / "yolov4.cfg"), "--size", "512"]) == 1
    assert "expected WxH" in capsys.readouterr().err


def test_local_and_detection_rows(tmp_path):
    """YOLOv1's tail: [local] shows its window like a convolution, [detection] its flat input."""
    cfg = tmp_path / "v1.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n\n[local]\nsize=3\nstride=1\npad=1\n"
                   "filters=2\nactivation=leaky\n\n[connected]\noutput=13\nactivation=linear\n\n"
                   "[detection]\nclasses=3\ncoords=4\nside=1\nnum=2\n")  # fmt: skip
    net = pydarknet.Network(cfg)
    shapes = net.infer_shapes(8, 8)
    local = net.layers[0].describe((3, 8, 8), shapes[0])
    assert re.search(r"^local\s+2\s+3 x 3/ 1\s+8 x   8 x   3 ->    8 x   8 x   2$", local)
    head = net.layers[2].describe(shapes[1], shapes[2])
    assert re.search(r"^detection\s+1 x   1 x  13 ->    1 x   1 x  13$", head)
