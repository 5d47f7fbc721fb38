"""Write the project's cfg/*.cfg and cfg/*.names from Darknet's reference copies in ../shared.

usage: python scripts/gen_cfgs.py [--shared DIR]

Every section and option is kept in order, so the official .weights load; what goes is what
darknet's reader (parser.c read_cfg, utils.c strip) ignores anyway: comments, commented-out
options, blank lines, whitespace, and the `###P6` tails after route indices that atoi skips.
[net] gets batch=1 subdivisions=1 (inference) and lists the options inference reads first.
Each file starts with a short header, and each layer is preceded by `# layer N`, its index in
darknet's layer table, so absolute [route] indices can be followed by eye.
tests/test_cfgfiles.py checks the result against ../shared/cfg.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_YOLOV2 = 'Redmon, Farhadi, "YOLO9000: Better, Faster, Stronger", CVPR 2017, arXiv:1612.08242'
_YOLOV3 = 'Redmon, Farhadi, "YOLOv3: An Incremental Improvement", arXiv:1804.02767'
_YOLOV4 = (
    'Bochkovskiy, Wang, Liao, "YOLOv4: Optimal Speed and Accuracy of Object Detection", '
    "arXiv:2004.10934"
)
_SCALED = (
    'Wang, Bochkovskiy, Liao, "Scaled-YOLOv4: Scaling Cross Stage Partial Network", '
    "CVPR 2021, arXiv:2011.08036"
)
_YOLOV7 = (
    'Wang, Bochkovskiy, Liao, "YOLOv7: Trainable bag-of-freebies sets new state-of-the-art '
    'for real-time object detectors", CVPR 2023, arXiv:2207.02696'
)
_SPP = 'He et al., "Spatial Pyramid Pooling in Deep Convolutional Networks", arXiv:1406.4729'

# project stem: (Darknet's cfg stem, model name, paper(s))
MODELS: dict[str, tuple[str, str, list[str]]] = {
    "yolov4-tiny": ("yolov4-tiny", "YOLOv4-tiny", [_SCALED]),
    "yolov4-tiny-3l": ("yolov4-tiny-3l", "YOLOv4-tiny-3l (three [yolo] heads)", [_SCALED]),
    "yolov4-csp": ("yolov4-csp", "YOLOv4-CSP (Scaled-YOLOv4)", [_SCALED]),
    "yolov4x-mish": ("yolov4x-mish", "YOLOv4x-mish (Scaled-YOLOv4)", [_SCALED]),
    "yolov4-p5": ("yolov4-p5", "YOLOv4-P5 (Scaled-YOLOv4)", [_SCALED]),
    "yolov4-p6": ("yolov4-p6", "YOLOv4-P6 (Scaled-YOLOv4)", [_SCALED]),
    "yolov4-p7": ("cspx-p7-mish", "YOLOv4-P7 (Darknet's cspx-p7-mish)", [_SCALED]),
    "yolov4": ("yolov4", "YOLOv4", [_YOLOV4]),
    "yolov3": ("yolov3", "YOLOv3", [_YOLOV3]),
    "yolov3-tiny": ("yolov3-tiny", "YOLOv3-tiny", [_YOLOV3]),
    "yolov3-spp": ("yolov3-spp", "YOLOv3-SPP", [_YOLOV3, _SPP]),
    "yolov7": ("yolov7", "YOLOv7", [_YOLOV7]),
    "yolov7-tiny": ("yolov7-tiny", "YOLOv7-tiny", [_YOLOV7]),
    "yolov2": ("yolov2", "YOLOv2", [_YOLOV2]),
    "yolov2-tiny": ("yolov2-tiny", "YOLOv2-tiny", [_YOLOV2]),
}
NAMES = ["coco.names", "voc.names"]

# [net] options that inference reads; the rest of [net] is training-only
NET_INFERENCE = ["batch", "subdivisions", "width", "height", "channels", "letter_box"]
NET_OVERRIDES = {"batch": "1", "subdivisions": "1"}


def read_sections(path: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """Darknet's reader: drop all whitespace, skip #/; lines, [section], key=value."""
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = "".join(raw.split())
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            sections.append((line[1:].split("]")[0], []))
            continue
        key, eq, value = line.partition("=")
        value = value.split("#")[0]  # `layers = 180 ###P6`: atoi stops at '#'
        if not eq or not value or not sections:
            raise SystemExit(f"{path}:{number}: cannot read {raw!r}")
        options = sections[-1][1]
        if key not in dict(options):  # option_find: the first occurrence wins
            options.append((key, value))
    return sections


def load_zoo():
    """pydarknet/zoo.py by path, so this script needs neither numpy nor an install."""
    spec = importlib.util.spec_from_file_location("pydarknet_zoo", REPO / "pydarknet" / "zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def heads_summary(sections: list[tuple[str, list[tuple[str, str]]]], net: dict) -> str:
    """One header line with the decode/NMS options that differ between models."""
    heads = [dict(opts) for kind, opts in sections if kind in ("yolo", "region")]
    kinds = sorted({kind for kind, _ in sections if kind in ("yolo", "region")})
    if kinds == ["region"]:
        h = heads[0]
        return (
            f"# Head: 1 [region], {h['num']} anchors, coords={h.get('coords', '4')}, "
            f"softmax={h.get('softmax', '0')}; NMS: plain IoU (do_nms_sort)."
        )
    scales = [h.get("scale_x_y", "1") for h in heads]
    scale = scales[0] if len(set(scales)) == 1 else "/".join(scales)
    nms = heads[-1].get("nms_kind", "default")  # darknet takes it from the last [yolo]
    nms_text = {"default": "plain IoU (do_nms_sort)", "greedynms": "greedynms (DIoU)"}.get(
        nms, f"{nms} beta_nms={heads[-1].get('beta_nms', '0.6')}"
    )
    new_coords = "/".join(sorted({h.get("new_coords", "0") for h in heads}))
    return (
        f"# Heads: {len(heads)} [yolo], scale_x_y={scale}, new_coords={new_coords}; "
        f"NMS: {nms_text}; letter_box={net.get('letter_box', '0')}."
    )


def anchors_note(sections) -> list[str]:
    """Header lines for a [yolo] whose mask reaches past num (cspx-p7-mish's P7 head)."""
    for kind, options in sections:
        opts = dict(options)
        if kind != "yolo" or "mask" not in opts:
            continue
        num, mask = int(opts["num"]), [int(v) for v in opts["mask"].split(",")]
        listed = len(opts["anchors"].split(",")) // 2
        if max(mask) >= num:
            return _wrap(
                f"Anchors: every [yolo] lists {listed} anchors with num={num}, and one uses "
                f"mask={opts['mask']}. Darknet reads only num*2 = {2 * num} anchor values "
                "(parse_yolo), so that head indexes past them; pydarknet keeps all "
                f"{listed} listed anchors (OpenCV refuses the cfg: it wants num*2 values)."
            )
    return []


def _wrap(text: str) -> list[str]:
    """A header comment wrapped at 100 columns, continuation lines indented."""
    return textwrap.wrap(
        text,
        98,
        initial_indent="# ",
        subsequent_indent="#   ",
        break_on_hyphens=False,
        break_long_words=False,
    )


def render(stem: str, shared_cfg: Path, zoo) -> str:
    """The text of cfg/<stem>.cfg."""
    darknet_stem, title, papers = MODELS[stem]
    sections = read_sections(shared_cfg)
    kind, net_options = sections[0]
    assert kind in ("net", "network"), shared_cfg
    net = dict(net_options)
    classes = {dict(o).get("classes") for k, o in sections if k in ("yolo", "region")}
    (n_classes,) = classes
    entry = zoo.WEIGHTS[stem]

    size = f"{net['width']}x{net['height']}x{net['channels']}"
    lines = [f"# {title}: {size} input, {n_classes} COCO classes (cfg/coco.names)."]
    for paper in papers:
        lines += _wrap(f"Paper: {paper}")
    if entry["url"]:
        lines += [
            f"# Weights: {stem}.weights, get them with: python scripts/download_weights.py {stem}",
            f"#   {entry['url']}",
        ]
    else:
        lines += _wrap(f"Weights: none official; {entry['note']}")
    lines += [
        f"# Same inference architecture as Darknet's cfg/{darknet_stem}.cfg (checked by tests).",
        heads_summary(sections, net),
        *anchors_note(sections),
        "",
        "[net]",
        "# read by inference",
    ]
    lines += [f"{k}={NET_OVERRIDES.get(k, net[k])}" for k in NET_INFERENCE if k in net]
    lines += ["# training only (darknet's trainer reads them; inference ignores them)"]
    lines += [f"{k}={v}" for k, v in net_options if k not in NET_INFERENCE]
    for index, (kind, options) in enumerate(sections[1:]):
        lines += ["", f"# layer {index}", f"[{kind}]"]
        lines += [f"{k}={v}" for k, v in options]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = parser.parse_args(argv)
    zoo = load_zoo()
    out = REPO / "cfg"
    out.mkdir(exist_ok=True)
    for stem, (darknet_stem, _, _) in MODELS.items():
        text = render(stem, args.shared / "cfg" / f"{darknet_stem}.cfg", zoo)
        (out / f"{stem}.cfg").write_text(text)
        print(f"cfg/{stem}.cfg")
    for name in NAMES:
        shutil.copyfile(args.shared / "data" / name, out / name)
        print(f"cfg/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
