"""cfg/*.cfg and cfg/*.names against Darknet's reference copies in ../shared, and the weights table.

The cfg files are the project's own (scripts/gen_cfgs.py wrote them), but official .weights only
load if they describe exactly Darknet's architecture; these tests pin that down.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CFG_DIR = REPO / "cfg"
PROJECT_STEMS = sorted(p.stem for p in CFG_DIR.glob("*.cfg"))
EXPECTED_STEMS = {
    "yolov4-tiny", "yolov4-tiny-3l", "yolov4-csp", "yolov4x-mish", "yolov4-p5", "yolov4-p6",
    "yolov4-p7", "yolov4", "yolov3", "yolov3-tiny", "yolov3-spp", "yolov7", "yolov7-tiny",
    "yolov2", "yolov2-tiny",
}  # fmt: skip
DARKNET_STEM = {"yolov4-p7": "cspx-p7-mish"}  # project name -> name in Darknet's cfg/

# Options that only Darknet's trainer reads (parser.c parse_net_options, parse_yolo, parse_region;
# DARKNET_NOTES.md "training-only"). A project cfg may drop or change them; every other option
# must be identical, because it changes shapes, weight counts, decoding or NMS.
TRAINING_ONLY = {
    "net": {
        "batch", "subdivisions", "momentum", "decay", "angle", "saturation", "exposure", "hue",
        "aspect", "learning_rate", "burn_in", "power", "max_batches", "policy", "steps",
        "scales", "mosaic", "cutmix", "mixup", "blur", "flip", "label_smooth_eps", "ema_alpha",
        "min_crop", "max_crop", "adam", "B1", "B2", "eps", "optimized_memory", "use_cuda_graph",
    },
    "convolutional": {"stopbackward"},
    "yolo": {
        "jitter", "ignore_thresh", "truth_thresh", "random", "resize", "iou_normalizer",
        "iou_loss", "iou_thresh_kind", "cls_normalizer", "obj_normalizer", "iou_thresh",
        "max_delta", "objectness_smooth", "counters_per_class", "label_smooth_eps", "focal_loss",
    },
    "region": {
        "jitter", "rescore", "object_scale", "noobject_scale", "class_scale", "coord_scale",
        "thresh", "random", "bias_match", "absolute",
    },
}  # fmt: skip


def read_cfg(path: Path) -> list[tuple[str, dict[str, str]]]:
    """Darknet's reader (parser.c read_cfg, utils.c strip, option_list.c option_find).

    All whitespace is deleted, lines starting with # or ; are skipped, `[x]` opens a section and
    `key=value` adds an option; the first occurrence of a key wins.
    """
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in path.read_text().splitlines():
        line = "".join(raw.split())
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            sections.append((line[1:].split("]")[0], {}))
        else:
            key, _, value = line.partition("=")
            sections[-1][1].setdefault(key, value)
    return sections


def inference_view(sections: list[tuple[str, dict[str, str]]]) -> list[tuple[str, dict]]:
    """Drop TRAINING_ONLY options; cut a `#...` tail off values, which atoi/atof stop at
    (cspx-p7-mish.cfg writes `layers = 180 ###P6`)."""
    return [
        (
            kind,
            {k: v.split("#")[0] for k, v in opts.items() if k not in TRAINING_ONLY.get(kind, ())},
        )
        for kind, opts in sections
    ]


def weight_count(sections: list[tuple[str, dict[str, str]]]) -> int:
    """Floats a .weights file holds after its header for this cfg (parser.c load_weights_upto).

    Only [convolutional] layers carry weights in these models: biases, BN scales/mean/variance,
    then filters * c/groups * size * size.
    """
    net = sections[0][1]
    shape = (int(net["channels"]), int(net["height"]), int(net["width"]))
    shapes: list[tuple[int, int, int]] = []
    total = 0
    for kind, o in sections[1:]:
        c, h, w = shape
        if kind == "convolutional":
            n, size, stride = int(o["filters"]), int(o.get("size", 1)), int(o.get("stride", 1))
            pad = size // 2 if int(o.get("pad", 0)) else int(o.get("padding", 0))
            per_filter = 4 if int(o.get("batch_normalize", 0)) else 1
            total += n * per_filter + n * c // int(o.get("groups", 1)) * size * size
            shape = (n, (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1)
        elif kind == "maxpool":
            stride = int(o.get("stride", 1))
            size = int(o.get("size", stride))
            padding = int(o.get("padding", size - 1))
            shape = (c, (h + padding - size) // stride + 1, (w + padding - size) // stride + 1)
        elif kind == "route":  # negative = relative, as Python indexing; else absolute
            inputs = [shapes[int(i)] for i in o["layers"].split(",")]
            shape = (sum(s[0] for s in inputs) // int(o.get("groups", 1)), *inputs[0][1:])
        elif kind == "upsample":
            stride = int(o.get("stride", 2))
            shape = (c, h * stride, w * stride)
        elif kind == "reorg":
            stride = int(o.get("stride", 1))
            shape = (c * stride * stride, h // stride, w // stride)
        else:
            assert kind in ("shortcut", "sam", "yolo", "region"), kind
            assert "weights_type" not in o  # weighted shortcuts would carry floats too
        shapes.append(shape)
    return total


def load_downloader():
    """scripts/download_weights.py as a module (it re-exports pydarknet/zoo.py's table)."""
    spec = importlib.util.spec_from_file_location(
        "download_weights", REPO / "scripts" / "download_weights.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dl = load_downloader()


def need_shared() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found: {SHARED}")


def test_project_ships_the_expected_cfgs():
    assert set(PROJECT_STEMS) == EXPECTED_STEMS


@pytest.mark.parametrize("stem", PROJECT_STEMS)
def test_cfg_matches_darknet(stem):
    need_shared()
    reference = SHARED / "cfg" / f"{DARKNET_STEM.get(stem, stem)}.cfg"
    if not reference.exists():
        pytest.skip(f"no Darknet counterpart {reference.name} in ../shared/cfg")
    ours = inference_view(read_cfg(CFG_DIR / f"{stem}.cfg"))
    theirs = inference_view(read_cfg(reference))
    assert [kind for kind, _ in ours] == [kind for kind, _ in theirs]
    for index, ((kind, a), (_, b)) in enumerate(zip(ours, theirs)):
        diff = {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        assert not diff, f"cfg/{stem}.cfg layer {index - 1} [{kind}]: (ours, darknet's) {diff}"


@pytest.mark.parametrize("stem", PROJECT_STEMS)
def test_cfg_is_clean(stem):
    path = CFG_DIR / f"{stem}.cfg"
    text = path.read_text()
    assert text.startswith("# "), "starts with a header comment"
    assert "\r" not in text and "\t" not in text
    sections: list[tuple[str, list[str]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        where = f"cfg/{stem}.cfg:{number}"
        assert line == line.rstrip(), f"{where}: trailing whitespace"
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            assert re.fullmatch(r"\[[a-z_]+\]", line), f"{where}: {line!r}"
            sections.append((line[1:-1], []))
            continue
        assert re.fullmatch(r"[A-Za-z_0-9]+=[^#;\s=]+", line), f"{where}: {line!r}"
        key = line.split("=")[0]
        assert key not in sections[-1][1], f"{where}: {key} repeated (darknet uses the first)"
        sections[-1][1].append(key)
    net = read_cfg(path)[0][1]
    assert (net["batch"], net["subdivisions"]) == ("1", "1")


@pytest.mark.parametrize("name", ["coco.names", "voc.names"])
def test_names_match_darknet(name):
    need_shared()
    ours = (CFG_DIR / name).read_text().splitlines()
    assert ours == (SHARED / "data" / name).read_text().splitlines()
    assert len(ours) == {"coco.names": 80, "voc.names": 20}[name]


def test_every_cfg_has_a_weights_entry():
    assert set(dl.WEIGHTS) == set(PROJECT_STEMS)


@pytest.mark.parametrize("stem", sorted(dl.WEIGHTS))
def test_weights_entry_is_well_formed(stem):
    entry = dl.WEIGHTS[stem]
    if entry["url"] is None:  # nothing official to download: say why
        assert entry["note"] and entry["size"] is None and entry["sha256"] is None
        return
    assert entry["url"].startswith("https://") and entry["url"].endswith(f"/{stem}.weights")
    assert isinstance(entry["size"], int)
    assert entry["sha256"] is None or re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
    for mirror in entry.get("mirrors", []):
        assert mirror.startswith("https://") and mirror.endswith(f"/{stem}.weights")
        assert entry["sha256"], "a mirror is only trusted when the sha256 proves its bytes"


@pytest.mark.parametrize("stem", [s for s, e in sorted(dl.WEIGHTS.items()) if e["size"]])
def test_weights_size_fits_the_cfg(stem):
    floats = weight_count(read_cfg(CFG_DIR / f"{stem}.cfg"))
    # header: major, minor, revision and a 64-bit `seen` (20 bytes); yolov2.weights predates
    # version 0.2 and has a 32-bit `seen` (16 bytes)
    header = 16 if stem == "yolov2" else 20
    assert dl.WEIGHTS[stem]["size"] == header + 4 * floats


def test_shared_yolov3_tiny_weights_match_the_table():
    need_shared()
    path = SHARED / "weights" / "yolov3-tiny.weights"
    entry = dl.WEIGHTS["yolov3-tiny"]
    assert path.stat().st_size == entry["size"]
    assert dl.sha256_of(path) == entry["sha256"]


def test_hint():
    line = dl.hint("yolov4-tiny")
    assert "python scripts/download_weights.py yolov4-tiny" in line
    assert dl.WEIGHTS["yolov4-tiny"]["url"] in line and "\n" not in line
    assert "no official weights" in dl.hint("yolov4-p7")
    assert "no official weights" in dl.hint("not-a-model")


def test_list_runs_from_a_plain_checkout():
    result = subprocess.run(
        [sys.executable, "scripts/download_weights.py", "--list"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert set(rows) == set(dl.WEIGHTS)
    for stem, entry in dl.WEIGHTS.items():
        if entry["url"] is None:
            assert "no official weights" in rows[stem]
        elif entry["sha256"] is None:
            assert "size only (no sha256)" in rows[stem]
        else:
            assert entry["sha256"][:12] in rows[stem]


def test_download_verifies_before_renaming(tmp_path, monkeypatch, capsys):
    # file:// URLs: the real code path without any network
    good = tmp_path / "good.bin"
    good.write_bytes(b"darknet" * 10)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"DARKNET" * 10)
    entry = {"size": 70, "sha256": hashlib.sha256(good.read_bytes()).hexdigest()}
    out = tmp_path / "weights"

    monkeypatch.setitem(dl.WEIGHTS, "yolov3-tiny", {**entry, "url": bad.as_uri()})
    assert dl.main(["yolov3-tiny", "--dir", str(out)]) == 1
    assert "expected" in capsys.readouterr().err
    assert not any(out.iterdir()), "nothing is kept after a mismatch, not even the .part"

    missing = (tmp_path / "missing.bin").as_uri()
    monkeypatch.setitem(
        dl.WEIGHTS, "yolov3-tiny", {**entry, "url": missing, "mirrors": [good.as_uri()]}
    )
    assert dl.main(["yolov3-tiny", "--dir", str(out)]) == 0  # falls back to the mirror
    assert [p.name for p in out.iterdir()] == ["yolov3-tiny.weights"]
    assert (out / "yolov3-tiny.weights").read_bytes() == good.read_bytes()
    assert dl.main(["yolov3-tiny", "--dir", str(out)]) == 0  # present and verified: no fetch
    assert "already present" in capsys.readouterr().err
