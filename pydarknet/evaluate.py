"""Accuracy: darknet's `detector map` (mAP@IoU from YOLO label files) and COCO AP via pycocotools.

darknet_map ports src/detector.c validate_detector_map: detections above 0.005 after NMS,
each matched to the same-class truth of highest IoU > iou_thresh in its image, ranked by
score over the whole dataset (a stable sort, as glibc's qsort), a truth counted once (later
matches are false positives), precision and recall in double, and AP as the area under the
PR curve at every recall step (points=0, VOC2010+) or at 11 / 101 recall points. The
TP/FP/F1/average-IoU line at `thresh` keeps darknet's own bookkeeping, quirks included.

The COCO side writes `detector valid`-style results (print_cocos: pixel [x, y, w, h] clipped
to the image, one entry per box and class) and scores them with pycocotools' COCOeval.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cfg import read_text
from .errors import DarknetError
from .postprocess import Detection, box_iou

_F = np.float32


# -- darknet detector map ----------------------------------------------------------------------
@dataclass
class ClassAP:
    """One class's line of `detector map`."""

    class_id: int
    name: str
    ap: float
    tp: int  # at thresh
    fp: int  # at thresh
    truths: int


@dataclass
class MapResult:
    """What `darknet detector map` prints, as numbers (mAP in [0, 1])."""

    classes: list[ClassAP]
    map: float
    precision: float  # at thresh (float, NaN when there are no detections above it)
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    avg_iou: float
    thresh: float
    iou_thresh: float
    points: int
    detections_count: int
    unique_truth_count: int

    def report(self) -> str:
        """The lines darknet prints, same formats (printf %2.2f etc.)."""
        lines = [f" detections_count = {self.detections_count}, "
                 f"unique_truth_count = {self.unique_truth_count}  "]  # fmt: skip
        for c in self.classes:
            lines.append("class_id = %d, name = %s, ap = %2.2f%%   \t (TP = %d, FP = %d) "
                         % (c.class_id, c.name, c.ap * 100, c.tp, c.fp))  # fmt: skip
        lines.append("")
        lines.append(
            " for conf_thresh = %1.2f, precision = %1.2f, recall = %1.2f, F1-score = %1.2f "
            % (self.thresh, self.precision, self.recall, self.f1)
        )
        lines.append(" for conf_thresh = %0.2f, TP = %d, FP = %d, FN = %d, average IoU = %2.2f %% "
                     % (self.thresh, self.tp, self.fp, self.fn, self.avg_iou * 100))  # fmt: skip
        lines.append("")
        how = (f"used {self.points} Recall-points" if self.points
               else "used Area-Under-Curve for each unique Recall")  # fmt: skip
        lines.append(" IoU threshold = %2.0f %%, %s " % (self.iou_thresh * 100, how))
        lines.append(" mean average precision (mAP@%0.2f) = %f, or %2.2f %% "
                     % (self.iou_thresh, self.map, self.map * 100))  # fmt: skip
        return "\n".join(lines)


def _fdiv(a, b) -> float:
    """C float division: NaN for 0/0 instead of an exception."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(_F(a) / _F(b))


def darknet_map(
    detections: Sequence[Sequence[Detection]],
    truths: Sequence[np.ndarray],
    classes: int,
    names: Sequence[str] | None = None,
    iou_thresh: float = 0.5,
    points: int = 0,
    thresh: float = 0.25,
) -> MapResult:
    """mAP as `darknet detector map` computes it (detector.c validate_detector_map).

    detections[i]: image i's detections in darknet's dets order (what Detector returns, run
    with thresh=0.005 and nms=0.45); truths[i]: its (K, 5) [class_id, x, y, w, h] labels.
    """
    if len(detections) != len(truths):
        raise ValueError("one truth array per image is needed")
    if points < 0 or points == 1:
        raise DarknetError(f"points={points}: use 0 (area under the curve), 11 or 101")
    names = list(names) if names is not None else [str(k) for k in range(classes)]
    iou_t, thresh_f = _F(iou_thresh), _F(thresh)
    truth_count = np.zeros(classes, np.int64)
    tp_c = np.zeros(classes, np.int64)
    fp_c = np.zeros(classes, np.int64)
    avg_iou = _F(0)
    # per detection: score, class, unique truth index (-1: none) in darknet's insertion order
    probs: list[float] = []
    cls_of: list[int] = []
    truth_of: list[int] = []
    unique = 0
    for dets, truth in zip(detections, truths):
        truth = np.asarray(truth, _F).reshape(-1, 5)
        tcls = truth[:, 0].astype(np.int64)
        if len(tcls) and (tcls.min() < 0 or tcls.max() >= classes):
            raise DarknetError(f"a label has class id {int(tcls.max())}; the model has {classes}")
        np.add.at(truth_count, tcls, 1)
        checkpoint = len(truth_of)
        for d in dets:
            p = _F(d.confidence)
            if not p > 0:
                continue
            k = d.class_id
            best, max_iou = -1, _F(0)
            if len(truth):
                ious = box_iou(np.array([d.x, d.y, d.w, d.h], _F), truth[:, 1:5])
                for j in np.nonzero((ious > iou_t) & (tcls == k))[0]:
                    if ious[j] > max_iou:  # strict: the first of equal IoUs wins
                        best, max_iou = unique + int(j), ious[j]
            probs.append(float(p))
            cls_of.append(k)
            truth_of.append(best)
            if p > thresh_f:
                # darknet: a truth already matched by an earlier detection of this image
                # (any score) makes this one a false positive at thresh
                found = best in truth_of[checkpoint:-1]
                if best > -1 and not found:
                    avg_iou = _F(avg_iou + max_iou)
                    tp_c[k] += 1
                else:
                    fp_c[k] += 1
        unique += len(truth)

    n = len(probs)
    tp_total, fp_total = int(tp_c.sum()), int(fp_c.sum())
    order = sorted(range(n), key=lambda r: -probs[r])  # stable, as glibc's merge-sort qsort
    cls_r = np.array([cls_of[r] for r in order], np.int64)
    truth_r = [truth_of[r] for r in order]
    is_tp = np.zeros(n, bool)
    flagged = set()
    for rank, t in enumerate(truth_r):
        if t > -1 and t not in flagged:
            flagged.add(t)
            is_tp[rank] = True

    results = []
    total = 0.0
    for k in range(classes):
        ap = 0.0
        if n:
            mine = cls_r == k
            tp = np.cumsum(mine & is_tp)
            fp = np.cumsum(mine & ~is_tp)
            with np.errstate(divide="ignore", invalid="ignore"):
                prec = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
                rec = tp / truth_count[k] if truth_count[k] > 0 else np.zeros(n)
            best_after = np.maximum.accumulate(prec[::-1])[::-1]  # max precision at rank..end
            if points == 0:
                # from the last rank down: (recall[r+1]-recall[r]) * max precision after r,
                # then the rest of the curve down to recall 0; summed in that order, in double
                terms = (rec[1:] - rec[:-1]) * best_after[:-1]
                seq = np.concatenate([terms[::-1], [rec[0] * best_after[0]]])
                ap = float(np.cumsum(seq)[-1])
            else:
                for point in range(points):
                    r = point * 1.0 / (points - 1)
                    first = int(np.searchsorted(rec, r, side="left"))  # recall is non-decreasing
                    ap += float(best_after[first]) if first < n else 0.0
                ap /= points
        total += ap
        results.append(ClassAP(k, names[k], ap, int(tp_c[k]), int(fp_c[k]), int(truth_count[k])))

    precision = _fdiv(tp_total, _F(tp_total) + _F(fp_total))
    recall = _fdiv(tp_total, _F(tp_total) + _F(unique - tp_total))
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = float(_F(2) * _F(precision) * _F(recall) / (_F(precision) + _F(recall)))
    if tp_total + fp_total > 0:
        avg_iou = _F(avg_iou / _F(tp_total + fp_total))
    return MapResult(results, total / classes, precision, recall, f1, tp_total, fp_total,
                     unique - tp_total, float(avg_iou), float(thresh), float(iou_thresh), points,
                     n, unique)  # fmt: skip


def read_data_file(path: str | os.PathLike) -> dict[str, str]:
    """A darknet .data file (key=value lines, spaces removed) as a dict (option_list.c)."""
    text = read_text(path)
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        line = re.sub(r"\s", "", line)
        if not line or line[0] in "#;":
            continue
        key, eq, value = line.partition("=")
        if not eq:
            raise DarknetError(f"{path}:{n}: {line!r}: expected key=value")
        out.setdefault(key, value)  # option_find: the first occurrence wins
    return out


def resolve(path: str, base: Path) -> Path:
    """A path from a .data or list file: as given if it exists, else relative to the file."""
    p = Path(path)
    return p if p.is_absolute() or p.exists() else base / p


# -- COCO ----------------------------------------------------------------------------------------
# darknet's coco.names spells six classes differently from instances_*.json
# (after lower-casing and dropping spaces: "potted plant" and "pottedplant" already agree)
COCO_ALIASES = {"motorbike": "motorcycle", "aeroplane": "airplane", "sofa": "couch",
                "tvmonitor": "tv"}  # fmt: skip


def _norm(name: str) -> str:
    key = re.sub(r"[\s_\-]", "", name.lower())
    return COCO_ALIASES.get(key, key)


def match_categories(categories: list[dict], names: Sequence[str]) -> list[int | None]:
    """The annotation category id of each model class, matched by name (None if none).

    Names are compared lower-case without spaces, '_' or '-', and darknet's coco.names
    spellings (motorbike, aeroplane, sofa, tvmonitor) map to COCO's.
    """
    by_name: dict[str, int] = {}
    for c in categories:
        by_name.setdefault(_norm(str(c.get("name", ""))), int(c["id"]))
    return [by_name.get(_norm(n)) for n in names]


def load_annotations(path: str | os.PathLike) -> dict:
    """A COCO instances JSON, checked for the keys COCOeval needs."""
    try:
        with open(path, encoding="utf-8") as f:
            gt = json.load(f)
    except OSError as e:
        raise DarknetError(f"{path}: cannot read: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise DarknetError(f"{path}: not valid JSON ({e})") from None
    needed = ("images", "annotations", "categories")
    if not isinstance(gt, dict) or not all(k in gt for k in needed):
        raise DarknetError(f"{path}: not a COCO instances file (needs images, annotations "
                           "and categories)")  # fmt: skip
    return gt


def match_images(gt: dict, paths: Sequence[str], annotations: str) -> dict[str, dict]:
    """Each path's image record in the annotations, by file name; the unknown ones are skipped.

    Raises DarknetError when no image matches (the annotations do not belong to the images).
    """
    by_file = {Path(str(im["file_name"])).name: im for im in gt["images"]}
    found = {p: by_file[Path(p).name] for p in paths if Path(p).name in by_file}
    if not found:
        example = Path(paths[0]).name if paths else "(no images)"
        raise DarknetError(
            f"{annotations}: none of the {len(paths)} images is in its 'images' list "
            f"(e.g. {example}); do the annotations match the images?"
        )
    return found


def coco_results(image_id: int, detections: Sequence[Detection], category_ids: list[int | None]
                 ) -> list[dict]:  # fmt: skip
    """`detector valid` COCO lines for one image (detector.c print_cocos).

    Pixel [xmin, ymin, w, h] with the box clipped to the image, one entry per (box, class);
    classes without a matching category are left out.
    """
    out = []
    for d in detections:
        cat = category_ids[d.class_id]
        if cat is None:
            continue
        iw, ih = d.image_w, d.image_h
        # print_cocos works on pixel boxes: bbox.x*w etc. (relative=0), then clips
        bx, by, bw, bh = (_F(d.x) * _F(iw), _F(d.y) * _F(ih), _F(d.w) * _F(iw), _F(d.h) * _F(ih))
        xmin, xmax = max(float(bx) - float(bw) / 2, 0.0), min(float(bx) + float(bw) / 2, iw)
        ymin, ymax = max(float(by) - float(bh) / 2, 0.0), min(float(by) + float(bh) / 2, ih)
        box = [float(_F(v)) for v in (xmin, ymin, xmax - xmin, ymax - ymin)]
        out.append({"image_id": image_id, "category_id": cat, "bbox": box,
                    "score": float(_F(d.confidence))})  # fmt: skip
    return out


COCO_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm",
              "ARl")  # fmt: skip


def coco_evaluate(gt: dict, results: list[dict], image_ids: Sequence[int]) -> tuple[dict, str]:
    """COCOeval(bbox) on the given images: ({AP, AP50, ...}, pycocotools' summary text)."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        hint = 'pip install "pydarknet[eval]"'
        raise DarknetError(f"COCO evaluation needs pycocotools: {hint}") from None
    text = io.StringIO()
    with contextlib.redirect_stdout(text):  # pycocotools prints; the CLI decides what to show
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
    if not results:
        stats = dict.fromkeys(COCO_STATS, 0.0)
        return stats, "no detections: every AP and AR is 0"
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.imgIds = sorted(set(image_ids))
        ev.evaluate()
        ev.accumulate()
        summary = io.StringIO()
        with contextlib.redirect_stdout(summary):
            ev.summarize()
    stats = {k: float(v) for k, v in zip(COCO_STATS, ev.stats)}
    return stats, summary.getvalue().rstrip()


def check_image_size(record: dict, path: str, size: tuple[int, int], annotations: str) -> None:
    """The annotations' width/height for an image must be the file's, or boxes are off."""
    w, h = record.get("width"), record.get("height")
    if w is not None and h is not None and (int(w), int(h)) != tuple(size):
        raise DarknetError(
            f"{annotations}: says {Path(path).name} is {w}x{h} but the file is "
            f"{size[0]}x{size[1]}; do the annotations match the images?"
        )

