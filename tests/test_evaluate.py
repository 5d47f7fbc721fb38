"""Accuracy: darknet's `detector map` and COCO AP, on datasets whose AP is known exactly.

The datasets are built from the detector's own output: its detections, written back as the
ground truth, must score AP 1.0; then one known change (an extra object nobody detected, a
truth moved away) gives a known lower AP.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pydarknet import evaluate
from pydarknet.cli import main
from pydarknet.detector import Detector
from pydarknet.errors import DarknetError
from pydarknet.postprocess import Detection

from .synthetic import CLASSES, NAMES, mirror_model, write_images


def det(cls: int, conf: float, x: float, y: float, w: float = 0.1, h: float = 0.1, box: int = 0):
    return Detection(cls, str(cls), conf, x, y, w, h, 100, 100, box)


# -- darknet_map on hand-made cases ---------------------------------------------------------------
def test_known_precision_recall_curve():
    # one class, 4 objects; ranked TP, FP, TP, TP -> P/R (1, .25) (.5, .25) (.67, .5) (.75, .75)
    truth = np.array([[0, 0.1, 0.1, 0.1, 0.1], [0, 0.3, 0.3, 0.1, 0.1],
                      [0, 0.5, 0.5, 0.1, 0.1], [0, 0.7, 0.7, 0.1, 0.1]], np.float32)  # fmt: skip
    dets = [det(0, 0.9, 0.1, 0.1, box=0), det(0, 0.8, 0.9, 0.9, box=1),
            det(0, 0.7, 0.3, 0.3, box=2), det(0, 0.6, 0.5, 0.5, box=3)]  # fmt: skip
    r = evaluate.darknet_map([dets], [truth], 1)
    # area: .25*1 (first step) + .25*.75 + .25*.75
    assert r.map == pytest.approx(0.625, abs=1e-12)
    assert (r.tp, r.fp, r.fn) == (3, 1, 1)
    assert r.precision == pytest.approx(0.75) and r.recall == pytest.approx(0.75)
    assert r.f1 == pytest.approx(0.75, rel=1e-6) and r.avg_iou == pytest.approx(0.75)
    # 11 points: recall 0, .1, .2 -> 1; .3 .. .7 -> .75; .8 .. 1 -> 0
    r11 = evaluate.darknet_map([dets], [truth], 1, points=11)
    assert r11.map == pytest.approx((3 + 5 * 0.75) / 11, abs=1e-12)
    r101 = evaluate.darknet_map([dets], [truth], 1, points=101)
    assert r101.map == pytest.approx((26 + 50 * 0.75) / 101, abs=1e-12)


def test_each_truth_counts_once_and_classes_must_match():
    truth = np.array([[0, 0.5, 0.5, 0.2, 0.2], [1, 0.2, 0.2, 0.2, 0.2]], np.float32)
    dets = [det(0, 0.9, 0.5, 0.5, 0.2, 0.2, 0), det(0, 0.8, 0.51, 0.5, 0.2, 0.2, 1),
            det(0, 0.7, 0.2, 0.2, 0.2, 0.2, 2)]  # fmt: skip  # 2nd: duplicate; 3rd: wrong class
    r = evaluate.darknet_map([dets], [truth], 2, names=["a", "b"])
    assert [c.ap for c in r.classes] == [1.0, 0.0]
    assert r.map == 0.5
    assert (r.classes[0].tp, r.classes[0].fp, r.classes[0].truths) == (1, 2, 1)
    assert r.detections_count == 3 and r.unique_truth_count == 2
    report = r.report()
    assert "class_id = 0, name = a, ap = 100.00%   \t (TP = 1, FP = 2) " in report
    assert "mean average precision (mAP@0.50) = 0.500000, or 50.00 % " in report
    assert "used Area-Under-Curve for each unique Recall" in report


def test_nothing_detected_and_bad_points():
    truth = np.array([[0, 0.5, 0.5, 0.2, 0.2]], np.float32)
    r = evaluate.darknet_map([[]], [truth], 1)
    assert r.map == 0.0 and r.fn == 1 and np.isnan(r.precision)
    with pytest.raises(DarknetError, match="points=1"):
        evaluate.darknet_map([[]], [truth], 1, points=1)


def test_category_names_match_darknet_spellings():
    cats = [{"id": 4, "name": "motorcycle"}, {"id": 5, "name": "airplane"},
            {"id": 63, "name": "couch"}, {"id": 72, "name": "tv"},
            {"id": 64, "name": "potted plant"}, {"id": 67, "name": "dining table"},
            {"id": 1, "name": "person"}]  # fmt: skip
    names = ["person", "motorbike", "aeroplane", "sofa", "tvmonitor", "pottedplant",
             "diningtable", "zebra"]  # fmt: skip
    assert evaluate.match_categories(cats, names) == [1, 4, 5, 63, 72, 64, 67, None]


# -- datasets built from the detector's own output ------------------------------------------------
@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Images, the detector's detections (thresh 0.005, as detector map), a .data file."""
    root = tmp_path_factory.mktemp("eval")
    cfg, weights = mirror_model(root / "model")
    paths = write_images(root / "data" / "images", 6)
    detector = Detector(cfg, weights, names=NAMES, thresh=0.005, nms=0.45)
    dets = [detector.detect_file(p) for p in paths]
    (root / "data" / "obj.names").write_text("\n".join(NAMES) + "\n")
    (root / "data" / "valid.txt").write_text("\n".join(p.split("/data/")[1] for p in paths) + "\n")
    (root / "data" / "obj.data").write_text(
        "classes = 4\nvalid = data/valid.txt\nnames = data/obj.names\n")  # fmt: skip
    return root, cfg, weights, paths, dets


def write_truth(paths, dets, change=None):
    """Label files holding the detections themselves ('%.9g' round-trips float32 exactly)."""
    for i, (p, ds) in enumerate(zip(paths, dets)):
        rows = [(d.class_id, d.x, d.y, d.w, d.h) for d in ds]
        if change:
            rows = change(i, rows)
        text = "".join("%d %.9g %.9g %.9g %.9g\n" % r for r in rows)
        open(p[:-4] + ".txt", "w").write(text)


def run_map(dataset, capsys, *extra):
    root, cfg, weights = dataset[:3]
    code = main(["map", str(cfg), "--weights", str(weights), "--data",
                 str(root / "data" / "obj.data"), *extra])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_darknet_map_of_its_own_detections_is_one(dataset, capsys, monkeypatch):
    root, _, _, paths, dets = dataset
    monkeypatch.chdir(root)  # the .data file's paths are relative to the current directory
    write_truth(paths, dets)
    counts = np.bincount([d.class_id for ds in dets for d in ds], minlength=CLASSES)
    assert counts.min() > 2  # every class has truths
    out = run_map(dataset, capsys)
    assert "mean average precision (mAP@0.50) = 1.000000, or 100.00 % " in out
    for k, name in enumerate(NAMES):
        assert f"class_id = {k}, name = {name}, ap = 100.00%" in out
    over = sum(d.confidence > 0.25 for ds in dets for d in ds)
    assert f"TP = {over}, FP = 0, FN = {counts.sum() - over}, average IoU = 100.00 %" in out


def test_darknet_map_with_known_misses(dataset, capsys, monkeypatch):
    root, _, _, paths, dets = dataset
    monkeypatch.chdir(root)
    n = [sum(d.class_id == k for ds in dets for d in ds) for k in range(CLASSES)]
    # class 1: one more object that nothing detects -> recall tops at n/(n+1), precision 1
    # class 2: the truth of its lowest-scoring detection moved away -> that one is a false
    # positive ranked last and its object a miss: AP (n-1)/n
    low = min((d.confidence, i, j) for i, ds in enumerate(dets) for j, d in enumerate(ds)
              if d.class_id == 2)  # fmt: skip
    scores2 = sorted(d.confidence for ds in dets for d in ds if d.class_id == 2)
    assert scores2[0] < scores2[1]  # unique, so its rank is certain

    def change(i, rows):
        rows = list(rows)
        if i == 0:
            rows.append((1, 0.01, 0.01, 0.004, 0.004))
        if i == low[1]:
            c, x, y, w, h = rows[low[2]]
            rows[low[2]] = (c, 0.99, 0.99, 0.004, 0.004)
        return rows

    write_truth(paths, dets, change)
    out = run_map(dataset, capsys)
    ap = [1.0, n[1] / (n[1] + 1), (n[2] - 1) / n[2], 1.0]
    for k in range(CLASSES):
        assert f"class_id = {k}, name = {NAMES[k]}, ap = {ap[k] * 100:2.2f}%" in out
    assert f"mean average precision (mAP@0.50) = {sum(ap) / 4:f}," in out
    r = evaluate.darknet_map(
        dets, [evaluate_labels(p) for p in paths], CLASSES, NAMES)  # fmt: skip
    assert r.map == pytest.approx(sum(ap) / 4, abs=1e-12)


def evaluate_labels(path):
    from pydarknet.labels import label_path, read_labels

    return read_labels(label_path(path), CLASSES)


def test_darknet_map_errors(dataset, capsys, monkeypatch, tmp_path):
    root, cfg, weights, paths, dets = dataset
    monkeypatch.chdir(root)
    write_truth(paths, dets)
    open(paths[1][:-4] + ".txt", "a").write("2 0.5 0.5\n")
    code = main(["map", str(cfg), "--weights", str(weights), "--data", "data/obj.data"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("pydarknet: error: ")
    assert "img001.txt:" in err[-1] and "expected 'class_id x y w h'" in err[-1]
    bad = tmp_path / "bad.data"
    bad.write_text("names = data/obj.names\n")
    assert main(["map", str(cfg), "--weights", str(weights), "--data", str(bad)]) == 1
    assert "no valid= line" in capsys.readouterr().err
    assert main(["map", str(cfg), "--weights", str(weights)]) == 1
    assert "map needs --data" in capsys.readouterr().err


# -- COCO ---------------------------------------------------------------------------------------
def coco_gt(paths, dets, extra=None):
    """COCO instances from the detections; category ids and order differ from the model's."""
    ids = {"circle": 11, "square": 3, "bar": 42, "blob": 7}
    cats = [{"id": ids[n], "name": n} for n in ("blob", "bar", "square", "circle")]
    images, anns = [], []
    cat_of = [ids[n] for n in NAMES]
    for i, (p, ds) in enumerate(zip(paths, dets)):
        h, w = ds[0].image_h, ds[0].image_w
        images.append({"id": 100 + i, "file_name": "val/" + p.split("/")[-1], "width": w,
                       "height": h})  # fmt: skip
        for r in evaluate.coco_results(100 + i, ds, cat_of):
            box = r["bbox"]
            anns.append({"id": len(anns) + 1, "image_id": 100 + i, "iscrowd": 0, "bbox": box,
                         "category_id": r["category_id"], "area": box[2] * box[3]})  # fmt: skip
    if extra:
        anns.append({"id": len(anns) + 1, "image_id": 100, "category_id": ids[extra],
                     "bbox": [0.0, 0.0, 1.0, 1.0], "area": 1.0, "iscrowd": 0})  # fmt: skip
    return {"images": images, "annotations": anns, "categories": cats}


def run_coco(dataset, capsys, gt, tmp_path, images=None):
    root, cfg, weights = dataset[:3]
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps(gt))
    out_json = tmp_path / "res" / "coco_results.json"
    code = main(["map", str(cfg), "--weights", str(weights), "--images",
                 images or str(root / "data" / "images"), "--annotations", str(ann), "--names",
                 str(root / "data" / "obj.names"), "--out", str(out_json)])  # fmt: skip
    out, err = capsys.readouterr()
    return code, out, err, out_json


def _stat(out: str, line: int) -> float:
    return float(out.splitlines()[line].rsplit("=", 1)[1])


def test_coco_ap_of_its_own_detections_is_one(dataset, capsys, tmp_path):
    root, cfg, weights, paths, dets = dataset
    code, out, err, out_json = run_coco(dataset, capsys, coco_gt(paths, dets), tmp_path)
    assert code == 0, err
    assert out.splitlines()[0].startswith(" Average Precision  (AP) @[ IoU=0.50:0.95 |")
    assert _stat(out, 0) == 1.0 and _stat(out, 1) == 1.0 and _stat(out, 2) == 1.0  # AP AP50 AP75
    results = json.loads(out_json.read_text())
    ids = {"circle": 11, "square": 3, "bar": 42, "blob": 7}
    want = [r for i, ds in enumerate(dets)
            for r in evaluate.coco_results(100 + i, ds, [ids[n] for n in NAMES])]  # fmt: skip
    assert results == want and all(r["score"] > 0.005 for r in results)


def test_coco_ap_with_one_object_missed(dataset, capsys, tmp_path):
    root, cfg, weights, paths, dets = dataset
    code, out, err, _ = run_coco(dataset, capsys, coco_gt(paths, dets, extra="bar"), tmp_path)
    assert code == 0, err
    n = sum(d.name == "bar" for ds in dets for d in ds)
    # precision stays 1 up to recall n/(n+1); pycocotools samples 101 recall points
    rec_thrs = np.linspace(0.0, 1.0, 101)
    ap_bar = np.sum(rec_thrs <= n / (n + 1)) / 101
    assert _stat(out, 1) == pytest.approx((3 + ap_bar) / 4, abs=5e-4)  # printed with 3 decimals


def test_coco_subset_of_annotated_images_and_mismatches(dataset, capsys, tmp_path):
    root, cfg, weights, paths, dets = dataset
    gt = coco_gt(paths, dets)
    code, out, err, first = run_coco(dataset, capsys, gt, tmp_path, images=paths[0])
    assert code == 0 and _stat(out, 0) == 1.0  # only image 0 is evaluated
    first.unlink()
    # images the annotations do not list
    other = dict(gt, images=[dict(im, file_name="x" + im["file_name"][4:]) for im in gt["images"]])
    code, out, err, out_json = run_coco(dataset, capsys, other, tmp_path)
    assert code == 1 and err.strip().count("\n") == 0
    assert "none of the 6 images is in its 'images' list" in err and not out_json.exists()
    # the right names but the wrong sizes
    sized = dict(gt, images=[dict(im, width=640) for im in gt["images"]])
    code, out, err, _ = run_coco(dataset, capsys, sized, tmp_path)
    assert code == 1 and "is 640x" in err and "do the annotations match the images?" in err
    # categories that are not the model's
    cats = dict(gt, categories=[{"id": 1, "name": "person"}])
    code, out, err, _ = run_coco(dataset, capsys, cats, tmp_path)
    assert code == 1 and "no category name matches" in err
    # not COCO at all
    code, out, err, _ = run_coco(dataset, capsys, {"images": []}, tmp_path)
    assert code == 1 and "not a COCO instances file" in err


def test_sample_images_scored_against_darknets_own_detections(tmp_path, capsys):
    """Truth = what the Darknet binary printed for yolov3-tiny at 0.25 on ../shared/images.

    Our boxes above 0.25 are Darknet's (IoU >= 0.98) and everything else scores lower, so each
    class present gets AP 100% in both metrics (COCO's too, at every IoU up to 0.95); Darknet's
    mAP divides by all 80 classes.
    """
    import shutil

    from .conftest import CFG, need_shared

    ref = json.loads(need_shared("reference", "darknet-yolov3-tiny-t0.25.json").read_text())
    weights = need_shared("weights", "yolov3-tiny.weights")
    images = tmp_path / "images"
    images.mkdir()
    gt = {"images": [], "annotations": [], "categories": []}
    present = set()
    for i, frame in enumerate(ref["frames"]):
        src = need_shared("images", frame["filename"])
        shutil.copy(src, images / frame["filename"])
        h, w = __import__("cv2").imread(str(src)).shape[:2]
        gt["images"].append({"id": i + 1, "file_name": frame["filename"], "width": w, "height": h})
        lines = []
        for o in frame["objects"]:
            r = o["relative_coordinates"]
            x, y, bw, bh = r["center_x"], r["center_y"], r["width"], r["height"]
            lines.append(f"{o['class_id']} {x} {y} {bw} {bh}\n")
            present.add(o["class_id"])
            x0, y0 = max((x - bw / 2) * w, 0), max((y - bh / 2) * h, 0)  # clipped, as
            x1, y1 = min((x + bw / 2) * w, w), min((y + bh / 2) * h, h)  # print_cocos does
            box = [x0, y0, x1 - x0, y1 - y0]
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i + 1,
                                      "category_id": o["class_id"] + 1, "bbox": box,
                                      "area": box[2] * box[3], "iscrowd": 0})  # fmt: skip
        (images / frame["filename"]).with_suffix(".txt").write_text("".join(lines))
    names = need_shared("data", "coco.names").read_text().split("\n")[:80]
    gt["categories"] = [{"id": k + 1, "name": n} for k, n in enumerate(names)]
    (tmp_path / "valid.txt").write_text("".join(f"images/{f['filename']}\n" for f in ref["frames"]))
    (tmp_path / "coco.data").write_text(f"valid = {tmp_path}/valid.txt\nnames = "
                                        f"{need_shared('data', 'coco.names')}\n")  # fmt: skip
    assert main(["map", str(CFG / "yolov3-tiny.cfg"), "--weights", str(weights), "--data",
                 str(tmp_path / "coco.data")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    for k in present:
        assert f"class_id = {k}, name = {names[k]}, ap = 100.00%" in out
    assert f"(mAP@0.50) = {len(present) / 80:f}," in out
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps(gt))
    assert main(["map", str(CFG / "yolov3-tiny.cfg"), "--weights", str(weights), "--images",
                 str(images), "--annotations", str(ann), "--out", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert _stat(out, 0) == _stat(out, 1) == _stat(out, 2) == 1.0  # AP, AP50, AP75
