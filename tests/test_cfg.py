"""The cfg reader: darknet's dialect, typed getters, and errors that name file:line."""

from __future__ import annotations

import codecs
import warnings

import pytest

import pydarknet
from pydarknet.cfg import parse_cfg_text, read_cfg
from pydarknet.errors import CfgError


def test_whitespace_comments_and_first_key_wins():
    text = "[network]\n  width = 416 \r\nheight=\t32\n# x=1\n; y=2\nwidth=999\n\n[conv]\nanchors = 10,14,  23,27\n"
    net, conv = parse_cfg_text(text, "a.cfg")
    assert net.kind == "net" and conv.kind == "conv"
    assert net.get_int("width") == 416  # option_find returns the first occurrence
    assert net.get_int("height") == 32
    assert conv.get_floats("anchors") == [10, 14, 23, 27]
    assert conv.line == 8 and net.where("height") == 3


def test_inline_comment_after_value_is_ignored_like_atoi():
    (s,) = parse_cfg_text("[route]\nlayers = 180 ###P6\n", "p7.cfg")
    assert s.get_ints("layers") == [180]


def test_integer_written_as_float_is_accepted_but_fraction_is_not():
    (s,) = parse_cfg_text("[x]\na=2.0\nb=2.5\n", "f.cfg")
    assert s.get_int("a") == 2
    with pytest.raises(CfgError, match=r"f\.cfg:3: \[x\] b=2\.5: '2\.5' is not an integer"):
        s.get_int("b")


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e400"])
def test_integer_that_is_not_finite_is_an_error(text):
    (s,) = parse_cfg_text(f"[x]\nsize={text}\n", "f.cfg")
    with pytest.raises(CfgError, match=rf"f\.cfg:2: \[x\] size={text}: '{text}' is not an integer"):
        s.get_int("size")


@pytest.mark.parametrize(
    "text,match",
    [
        ("width=1\n[net]\n", r"c\.cfg:1: 'width=1' comes before any \[section\]"),
        ("[net]\nwidth\n", r"c\.cfg:2: \[net\] 'width': expected key=value"),
        ("[net\nwidth=1\n", r"c\.cfg:1: malformed section header"),
        ("# only comments\n", r"c\.cfg: no sections found"),
    ],
)
def test_syntax_errors(text, match):
    with pytest.raises(CfgError, match=match):
        parse_cfg_text(text, "c.cfg")


def test_missing_cfg_file_names_it(tmp_path):
    with pytest.raises(CfgError, match=r"nope\.cfg: cannot read cfg file"):
        read_cfg(tmp_path / "nope.cfg")


@pytest.mark.parametrize(
    "encode",
    [
        lambda t: t.encode(),
        lambda t: t.replace("\n", "\r\n").encode(),  # Windows line ends
        lambda t: codecs.BOM_UTF8 + t.encode(),  # a byte-order mark no editor shows
        lambda t: t.encode("utf-16"),  # Notepad's "Unicode", with its mark
    ],
)
def test_cfg_file_encodings_read_the_same(tmp_path, encode):
    text = "[net]\nwidth=32 # w\nheight=32\n\n[maxpool]\nsize=2\nstride=2\n"
    path = tmp_path / "e.cfg"
    path.write_bytes(encode(text))
    got = [(s.kind, s.line, s.options) for s in read_cfg(path)]
    assert got == [(s.kind, s.line, s.options) for s in parse_cfg_text(text, str(path))]
    assert got[0][2]["width"] == ("32#w", 2)


NET = "[net]\nwidth=32\nheight=32\nchannels=3\n"


def test_darknet_defaults(tmp_path):
    cfg = tmp_path / "d.cfg"
    cfg.write_text(NET + "[convolutional]\nfilters=4\nsize=3\npad=1\n\n[maxpool]\nstride=2\n\n"
                   "[upsample]\n")  # fmt: skip
    net = pydarknet.Network(cfg)
    conv, pool, up = net.layers
    assert conv.activation == pydarknet.layers.ACTIVATIONS["logistic"]  # darknet, not linear
    assert conv.padding == 1 and conv.stride_x == conv.stride_y == 1
    assert (pool.size, pool.padding) == (2, 1)  # size defaults to stride, padding to size-1
    assert up.stride == 2
    assert net.shapes == [(4, 32, 32), (4, 16, 16), (4, 32, 32)]


def test_maxpool_size2_stride1_keeps_size_and_odd_stride2_rounds_up(tmp_path):
    cfg = tmp_path / "m.cfg"
    cfg.write_text("[net]\nwidth=13\nheight=13\nchannels=3\n[maxpool]\nsize=2\nstride=1\n"
                   "[maxpool]\nsize=2\nstride=2\n")  # fmt: skip
    assert pydarknet.Network(cfg).shapes == [(3, 13, 13), (3, 7, 7)]


def test_training_keys_are_silent_and_unknown_keys_warn_with_line(tmp_path):
    cfg = tmp_path / "w.cfg"
    cfg.write_text(NET + "batch=64\nmosaic=1\n[convolutional]\nfilters=2\nfancy_thing=3\n"
                   "activation=linear\n")  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pydarknet.Network(cfg)
    messages = [str(w.message) for w in caught]
    assert messages == [f"{cfg}:9: [convolutional] fancy_thing=3: unused option"]


def test_unimplemented_inference_option_is_an_error(tmp_path):
    cfg = tmp_path / "e.cfg"
    cfg.write_text(NET + "[convolutional]\nfilters=2\nxnor=1\n")
    with pytest.raises(CfgError, match=r"e\.cfg:7: \[convolutional\] xnor=1: XNOR"):
        pydarknet.Network(cfg)


def test_first_section_must_be_net(tmp_path):
    cfg = tmp_path / "n.cfg"
    cfg.write_text("[convolutional]\nfilters=2\n")
    with pytest.raises(CfgError, match=r"n\.cfg:1: the first section is \[convolutional\]"):
        pydarknet.Network(cfg)


def test_route_groups_take_the_group_id_slice(tmp_path):
    import numpy as np

    cfg = tmp_path / "r.cfg"
    cfg.write_text(NET + "[convolutional]\nfilters=6\nactivation=linear\n"
                   "[route]\nlayers=-1\ngroups=3\ngroup_id=2\n")  # fmt: skip
    net = pydarknet.Network(cfg)
    net.save_random_weights(tmp_path / "r.weights")
    assert net.shapes[-1] == (2, 32, 32)
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    net.output_layers = [0, 1]  # expose both layers' outputs through forward()
    conv_out, route_out = net.forward(x)
    np.testing.assert_array_equal(route_out, conv_out[:, 4:6])


@pytest.mark.parametrize(
    "text,darknet",
    [("-6-1", -6), ("x6", 0)],  # a real cfg's `layers = -6-1`, a typo for -6,-1
)  # fmt: skip
def test_integer_with_trailing_text_is_an_error_saying_what_darknet_reads(text, darknet):
    """Stricter than darknet's atoi (STYLE: a bad number is an error), and the message says
    what darknet would build, so the user can write that or what was meant."""
    (s,) = parse_cfg_text(f"[route]\nlayers = {text}\n", "v.cfg")
    with pytest.raises(CfgError, match=rf"v\.cfg:2: \[route\] layers={text}: '{text}' is not a "
                       rf"number; expected an integer \(darknet's atoi would read {darknet}\)"):
        s.get_ints("layers")


def test_float_with_trailing_text_is_an_error_saying_what_darknet_reads():
    (s,) = parse_cfg_text("[yolo]\nscale_x_y = 1.05x\nanchors = 10,14.5q\nignore = abc\n", "y.cfg")
    with pytest.raises(CfgError, match=r"y\.cfg:2: \[yolo\] scale_x_y=1\.05x: '1\.05x' is not "
                       r"a number \(darknet's atof would read 1\.05\)"):
        s.get_float("scale_x_y")
    with pytest.raises(CfgError, match=r"'14\.5q' is not a number \(darknet's atof would read 14\.5"):
        s.get_floats("anchors")
    with pytest.raises(CfgError, match=r"y\.cfg:4: \[yolo\] ignore=abc: 'abc' is not a number"):
        s.get_float("ignore")
