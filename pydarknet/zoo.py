"""Official Darknet weights for the project's cfg/*.cfg files: URL, size and sha256.

Stdlib only and imports nothing from the package, so scripts/download_weights.py can load it
without numpy. Keys are cfg stems: cfg/<stem>.cfg pairs with weights/<stem>.weights.

Where the numbers come from:
- size: 4 bytes per float the cfg needs plus the header (20 bytes; 16 for yolov2.weights, whose
  `seen` counter is 32-bit, parser.c load_weights_upto). A file of any other size cannot load.
  Published sizes agree where found: yolov2 203,934,260 (wget log), yolov2-tiny 44,948,600
  (darkflow "found" message), yolov3 248,007,048, yolov3-tiny 35,434,956 (../shared copy),
  yolov4 257,717,640; the rest match the MB figures of AlexeyAB's README.
- sha256: only values that independent public download scripts agree on for the official URL
  (the TensorFlow Model Garden YOLO downloader, Emgu CV's model manager, the AUR
  zmeventnotification PKGBUILD, a Yocto recipe, ...); yolov3-tiny was also computed from
  ../shared/weights. None where no value was found: those downloads are checked by size only.
  Never fill one in without a source.
"""

from __future__ import annotations

_ALEXEYAB = "https://github.com/AlexeyAB/darknet/releases/download"
_PJREDDIE = "https://pjreddie.com/media/files"
# hank-ai/darknet (the maintained Darknet fork) re-hosts the classic files; used only after the
# official URL fails, and only for entries with a sha256, so a mirror can never slip in other bytes.
_HANKAI = "https://github.com/hank-ai/darknet/releases/download/v2.0"

WEIGHTS: dict[str, dict] = {
    "yolov4-tiny": {
        "url": f"{_ALEXEYAB}/darknet_yolo_v4_pre/yolov4-tiny.weights",
        "size": 24_251_276,
        # an older upload had 037676f0...; every recent source gives this one
        "sha256": "cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87",
        "mirrors": [f"{_HANKAI}/yolov4-tiny.weights"],
    },
    "yolov4-tiny-3l": {
        "url": None,
        "size": None,
        "sha256": None,
        "note": "AlexeyAB publishes no COCO-trained weights for it, only the training start "
        f"point {_ALEXEYAB}/darknet_yolo_v4_pre/yolov4-tiny.conv.29",
    },
    "yolov4-csp": {
        "url": f"{_ALEXEYAB}/darknet_yolo_v4_pre/yolov4-csp.weights",
        "size": 211_944_840,
        "sha256": None,
    },
    "yolov4x-mish": {
        "url": f"{_ALEXEYAB}/darknet_yolo_v4_pre/yolov4x-mish.weights",
        "size": 399_388_168,
        "sha256": None,
    },
    "yolov4-p5": {
        "url": f"{_ALEXEYAB}/darknet_yolo_v4_pre/yolov4-p5.weights",
        "size": 283_669_892,
        "sha256": None,
    },
    "yolov4-p6": {
        "url": f"{_ALEXEYAB}/darknet_yolo_v4_pre/yolov4-p6.weights",
        "size": 510_868_180,
        "sha256": None,
    },
    "yolov4-p7": {
        "url": None,
        "size": None,
        "sha256": None,
        "note": "AlexeyAB ships the cfg (cspx-p7-mish.cfg) but publishes no Darknet weights for it",
    },
    "yolov4": {
        "url": f"{_ALEXEYAB}/darknet_yolo_v3_optimal/yolov4.weights",
        "size": 257_717_640,
        "sha256": "e8a4f6c62188738d86dc6898d82724ec0964d0eb9d2ae0f0a9d53d65d108d562",
    },
    "yolov3": {
        "url": f"{_PJREDDIE}/yolov3.weights",
        "size": 248_007_048,
        "sha256": "523e4e69e1d015393a1b0a441cef1d9c7659e3eb2d7e15f793f060a21b32f297",
        "mirrors": [f"{_HANKAI}/yolov3.weights"],
    },
    "yolov3-tiny": {
        "url": f"{_PJREDDIE}/yolov3-tiny.weights",
        "size": 35_434_956,
        "sha256": "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
        "mirrors": [f"{_HANKAI}/yolov3-tiny.weights"],
    },
    "yolov3-spp": {
        "url": f"{_PJREDDIE}/yolov3-spp.weights",
        "size": 252_209_544,
        "sha256": "87a1e8c85c763316f34e428f2295e1db9ed4abcec59dd9544f8052f50de327b4",
    },
    "yolov7": {
        "url": f"{_ALEXEYAB}/yolov4/yolov7.weights",
        "size": 147_898_248,
        "sha256": None,
    },
    "yolov7-tiny": {
        "url": f"{_ALEXEYAB}/yolov4/yolov7-tiny.weights",
        "size": 24_967_560,
        "sha256": None,
    },
    "yolov2": {
        "url": f"{_PJREDDIE}/yolov2.weights",
        "size": 203_934_260,
        "sha256": "d9945162ed6f54ce1a901e3ec537bdba4d572ecae7873087bd730e5a7942df3f",
        "mirrors": [f"{_HANKAI}/yolov2.weights"],
    },
    "yolov2-tiny": {
        "url": f"{_PJREDDIE}/yolov2-tiny.weights",
        "size": 44_948_600,
        "sha256": None,
    },
}


def hint(cfg_stem: str) -> str:
    """One line telling a user how to get the weights that fit cfg/<cfg_stem>.cfg."""
    entry = WEIGHTS.get(cfg_stem)
    if entry is None:
        return f"no official weights are known for {cfg_stem!r}; pass the .weights file explicitly"
    if entry["url"] is None:
        return f"no official weights for {cfg_stem}: {entry['note']}"
    return (
        f"download it with: python scripts/download_weights.py {cfg_stem}  (or from {entry['url']})"
    )
