"""The `pydarknet` command: detect | info. The only module that prints or exits."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from .errors import DarknetError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jp2"}


def _positive_threads(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return n


def _unit_float(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pydarknet", description="Exact Darknet YOLO inference on the CPU."
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("detect", help="detect objects in images (darknet detector test)")
    d.add_argument("cfg", help="darknet .cfg file")
    d.add_argument("inputs", nargs="+", help="images, directories of images, or .txt list files")
    d.add_argument("--weights", help="darknet .weights (default: weights/<cfg stem>.weights)")
    d.add_argument("--names", help="class names, one per line, or a darknet .data file")
    d.add_argument("--thresh", type=_unit_float, default=0.25, help="score threshold (0.25)")
    d.add_argument("--nms", type=_unit_float, default=0.45, help="NMS threshold, 0 = off (0.45)")
    d.add_argument("--letterbox", action="store_true", help="letterbox even if the cfg does not")
    d.add_argument("--ext-output", action="store_true", help="print box coordinates too")
    d.add_argument("--json", action="store_true", help="darknet -out JSON on stdout, only that")
    d.add_argument("--out-dir", default="predictions", help="annotated images (predictions/)")
    d.add_argument("--no-draw", action="store_true", help="do not write annotated images")
    d.add_argument("--threads", type=_positive_threads, help="CPU threads (all cores)")
    d.set_defaults(func=cmd_detect)

    i = sub.add_parser("info", help="print the layer table of a cfg (like darknet)")
    i.add_argument("cfg")
    i.add_argument("--size", help="input size WxH (default: the cfg's)")
    i.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        return args.func(args) or 0
    except DarknetError as e:
        if args.debug:
            raise
        print(f"pydarknet: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pydarknet: interrupted", file=sys.stderr)
        return 130


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"pydarknet: warning: {message}", file=sys.stderr)


# -- helpers -------------------------------------------------------------------------------------
def set_threads(n: int | None) -> None:
    """Set Numba's and BLAS's thread counts together (--threads, or $PYDARKNET_THREADS)."""
    if n is None and os.environ.get("PYDARKNET_THREADS"):
        n = int(os.environ["PYDARKNET_THREADS"])
    if n is None:
        return
    from .threads import set_num_threads

    set_num_threads(n)


def default_weights(cfg: str) -> Path:
    """weights/<cfg stem>.weights, next to the current directory or the cfg's parent."""
    stem = Path(cfg).stem
    candidates = [Path("weights") / f"{stem}.weights",
                  Path(cfg).resolve().parent.parent / "weights" / f"{stem}.weights"]  # fmt: skip
    for c in candidates:
        if c.is_file():
            return c
    from .zoo import hint

    raise DarknetError(f"no weights given and {candidates[0]} does not exist; {hint(stem)}")


def read_names(path: str | None, classes: int, cfg: str) -> list[str]:
    """Class names from a names file or a darknet .data file (names=...), else coco or numbers."""
    if path is None:
        guess = Path(cfg).resolve().parent / "coco.names"
        bundled = Path(__file__).resolve().parent / "data" / "coco.names"
        for candidate in (guess, bundled):
            if classes == 80 and candidate.is_file():
                return _read_lines(candidate)
        return [str(i) for i in range(classes)]
    p = Path(path)
    if p.suffix == ".data":
        for line in _read_lines(p):
            key, _, value = line.replace(" ", "").partition("=")
            if key == "names":
                names_path = Path(value)
                if not names_path.is_file():
                    names_path = p.parent / value
                return _check_names(_read_lines(names_path), names_path, classes)
        raise DarknetError(f"{path}: no names= line in the .data file")
    return _check_names(_read_lines(p), p, classes)


def _read_lines(path: Path) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DarknetError(f"{path}: cannot read: {e.strerror or e}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _check_names(names: list[str], path: Path, classes: int) -> list[str]:
    if len(names) < classes:
        raise DarknetError(f"{path}: has {len(names)} names but the cfg has {classes} classes")
    return names


def expand_inputs(inputs: list[str]) -> list[str]:
    """Images as given; directories -> their images (sorted); .txt -> one path per line."""
    out: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS)
            if not found:
                raise DarknetError(f"{item}: directory holds no images")
            out += found
        elif p.suffix.lower() == ".txt" and p.is_file():
            for line in _read_lines(p):
                q = Path(line)
                out.append(str(q if q.is_absolute() or q.exists() else p.parent / q))
        else:
            out.append(item)
    return out


# -- commands ------------------------------------------------------------------------------------
def cmd_detect(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    from . import image, postprocess
    from .network import load

    weights = args.weights or default_weights(args.cfg)
    net = load(args.cfg, weights)
    classes = net.layers[net.heads[-1]].classes if net.heads else 0
    if not net.heads:
        raise DarknetError(f"{args.cfg}: has no [yolo] or [region] layer; it is not a detector")
    names = read_names(args.names, classes, args.cfg)
    letterbox = args.letterbox or net.letter_box
    frames = []
    for frame_id, path in enumerate(expand_inputs(args.inputs), start=1):
        img = image.load_image(path)
        t0 = time.perf_counter()
        dets = net.detect(img, thresh=args.thresh, nms=args.nms, letterbox=letterbox, names=names)
        ms = (time.perf_counter() - t0) * 1000
        print(f"{path}: predicted in {ms:.1f} ms", file=sys.stderr)
        if args.json:
            frames.append((frame_id, path, dets))
        else:
            print(f"{path}:")
            for line in postprocess.format_darknet(dets, names, args.thresh, args.ext_output):
                print(line)
        if not args.no_draw:
            out_dir = Path(args.out_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            target = out_dir / (Path(path).stem + ".jpg")
            image.save_image(str(target), image.draw_detections(img, dets, names))
    if args.json:
        json.dump(postprocess.to_darknet_json(frames), sys.stdout, indent=1)
        print()
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .network import Network

    net = Network(args.cfg)
    size = None
    if args.size:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise DarknetError(f"--size {args.size}: expected WxH, e.g. 416x416") from None
        size = (h, w)
    print(net.summary(size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
