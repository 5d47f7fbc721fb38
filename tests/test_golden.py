"""Against Darknet itself: yolov3-tiny detections on the sample images, as the C binary printed."""

from __future__ import annotations

import json

import pytest

from pydarknet.cli import main

from .conftest import CFG, need_shared


def _iou(a: dict, b: dict) -> float:
    def corners(r):
        return (r["center_x"] - r["width"] / 2, r["center_y"] - r["height"] / 2,
                r["center_x"] + r["width"] / 2, r["center_y"] + r["height"] / 2)  # fmt: skip

    ax1, ay1, ax2, ay2 = corners(a)
    bx1, by1, bx2, by2 = corners(b)
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    return inter / (a["width"] * a["height"] + b["width"] * b["height"] - inter)


@pytest.mark.parametrize("thresh", ["0.25", "0.05"])
def test_detect_json_matches_darknet(thresh, capsys, tmp_path):
    ref = json.loads(need_shared("reference", f"darknet-yolov3-tiny-t{thresh}.json").read_text())
    weights = need_shared("weights", "yolov3-tiny.weights")
    images = [str(need_shared("images", f["filename"])) for f in ref["frames"]]
    code = main(["detect", str(CFG / "yolov3-tiny.cfg"), *images, "--weights", str(weights),
                 "--thresh", thresh, "--json", "--no-draw"])  # fmt: skip
    assert code == 0
    ours = json.loads(capsys.readouterr().out)  # stdout holds the JSON and nothing else
    assert [f["frame_id"] for f in ours] == list(range(1, len(images) + 1))
    for want, got in zip(ref["frames"], ours):
        assert got["filename"].endswith(want["filename"])
        unmatched = list(got["objects"])
        for obj in want["objects"]:
            same_class = [o for o in unmatched if o["class_id"] == obj["class_id"]]
            assert same_class, f"{want['filename']}: darknet's {obj} not found"
            best = max(same_class, key=lambda o: _iou(o["relative_coordinates"],
                                                      obj["relative_coordinates"]))  # fmt: skip
            assert _iou(best["relative_coordinates"], obj["relative_coordinates"]) >= 0.98
            assert abs(best["confidence"] - obj["confidence"]) <= 0.01
            assert best["name"] == obj["name"]
            unmatched.remove(best)
        assert not unmatched, f"{want['filename']}: extra detections {unmatched}"


def test_detect_text_output_is_darknets(capsys, tmp_path):
    weights = need_shared("weights", "yolov3-tiny.weights")
    dog = need_shared("images", "dog.jpg")
    code = main(["detect", str(CFG / "yolov3-tiny.cfg"), str(dog), "--weights", str(weights),
                 "--ext-output", "--out-dir", str(tmp_path)])  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{dog}:"
    # Darknet prints boxes sorted by left edge; the dog (left_x 124) comes first.
    assert lines[1].startswith("dog: 8")
    assert "\t(left_x:  12" in lines[1] and "width:  25" in lines[1]
    assert (tmp_path / "dog.jpg").is_file()
