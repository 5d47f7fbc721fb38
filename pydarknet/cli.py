"""The `pydarknet` command: detect | info. The only module that prints or exits."""

from __future__ import annotations

import argparse
import atexit
import gc
import glob
import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path

from .errors import DarknetError

HEADS_HELP = ("compute only these heads: pyramid levels (P3,P4,P5) or positions in cfg order "
              "(0,1); e.g. P7 without its P7 head (Scaled-YOLOv4's once-for-all P7\\P7)")
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jp2"}


def _positive_threads(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return n


# Without --batch, several images run one per thread when each thread's buffers for an image
# (arena + workspace) stay under this: it pays on small models, whose layers split poorly
# (yolov4-tiny: ~20% more images/s on 2 cores), while a big model's layers split well and each
# extra image in flight costs its arena (yolov4-p7 at 1536: ~1.2 GB).
AUTO_BATCH_BYTES = 64 << 20


def _image_batch(args: argparse.Namespace, images: int, det) -> int:
    """--batch, else one image per pool thread when there are several and the model is small
    (a batch runs one image per thread: Network._forward_images), else 1."""
    if args.batch:
        return args.batch
    from . import threads

    n = min(threads.num_threads(), images)
    if n <= 1 or det.network.bytes_per_image(det.height, det.width) > AUTO_BATCH_BYTES:
        return 1
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
    d.add_argument("inputs", nargs="+", help="images, directories, globs, .txt list files; or "
                   "one video file, camera index (0) or stream URL (rtsp://, http://)")
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
    d.add_argument("--save-labels", action="store_true",
                   help="write darknet YOLO label files next to the images (-save_labels)")
    d.add_argument("--tta", action="store_true", help="test-time augmentation: flips and scales")
    d.add_argument("--batch", type=_positive_threads,
                   help="images per forward (default: one per thread when there are several)")
    d.add_argument("--dask", metavar="SCHEDULER",
                   help="run on a Dask cluster: tcp://host:8786, or local[:N] for N processes")
    d.add_argument("--out-video", help="annotated video file (default: OUT_DIR/<name>.avi)")
    d.add_argument("--heads", help=HEADS_HELP)
    d.set_defaults(func=cmd_detect)

    m = sub.add_parser("map", help="accuracy: COCO AP (pycocotools) or darknet's mAP@0.5")
    m.add_argument("cfg", help="darknet .cfg file")
    m.add_argument("--weights", help="darknet .weights (default: weights/<cfg stem>.weights)")
    m.add_argument("--data", help="darknet .data file: valid= image list, names=, YOLO labels")
    m.add_argument("--images", help="COCO: a directory, glob or list file of images")
    m.add_argument("--annotations", help="COCO: instances JSON (categories matched by name)")
    m.add_argument("--names", help="class names (COCO mode; default: coco.names for 80 classes)")
    m.add_argument("--out", default=str(Path("results") / "coco_results.json"),
                   help="COCO results JSON, detector valid style (results/coco_results.json)")
    m.add_argument("--thresh", type=_unit_float, default=0.25,
                   help="score threshold for TP/FP/F1 (darknet map; 0.25)")
    m.add_argument("--iou-thresh", type=_unit_float, default=0.5, help="IoU for a match (0.5)")
    m.add_argument("--points", type=int, default=0, choices=(0, 11, 101),
                   help="0: area under the curve (default), 11: VOC2007, 101: COCO-style")
    m.add_argument("--letterbox", action="store_true", help="letterbox even if the cfg does not")
    m.add_argument("--tta", action="store_true", help="test-time augmentation: flips and scales")
    m.add_argument("--batch", type=_positive_threads,
                   help="images per forward (default: one per thread)")
    m.add_argument("--threads", type=_positive_threads, help="CPU threads (all cores)")
    m.set_defaults(func=cmd_map)

    i = sub.add_parser("info", help="print the layer table of a cfg (like darknet)")
    i.add_argument("cfg")
    i.add_argument("--size", help="input size WxH (default: the cfg's)")
    i.add_argument("--heads", help=HEADS_HELP)
    i.set_defaults(func=cmd_info)

    b = sub.add_parser("bench", help="forward latency, per-layer profile, memory, cold start")
    b.add_argument("cfg", help="darknet .cfg file")
    b.add_argument("--weights", help="darknet .weights (default: random weights)")
    b.add_argument("--size", help="input size WxH (default: the cfg's)")
    b.add_argument("--threads", type=_positive_threads, help="CPU threads (all cores)")
    b.add_argument("--repeat", type=_positive_threads, default=20, help="timed runs (20)")
    b.add_argument("--batch", type=_positive_threads, default=1, help="images per forward (1)")
    b.add_argument("--vs", choices=["opencv", "onnxruntime"], action="append", default=[],
                   help="also time OpenCV 4.x DNN, or ONNX Runtime on the network converted to "
                        "ONNX, interleaved (repeat for both)")
    b.add_argument("--layers", action="store_true", help="time and GFLOP/s of every layer")
    b.add_argument("--memory", action="store_true",
                   help="peak RSS of a fresh process running the model (and OpenCV's with --vs)")
    b.add_argument("--cold", metavar="IMAGE",
                   help="process start to exit of `pydarknet detect IMAGE` (vs an OpenCV script)")
    b.add_argument("--heads", help=HEADS_HELP)
    b.set_defaults(func=cmd_bench)

    c = sub.add_parser("classify", help="top classes of images (darknet classifier predict)")
    c.add_argument("cfg", help="darknet classifier .cfg (no [yolo]/[region] layer)")
    c.add_argument("inputs", nargs="+", help="images, directories of images, or .txt list files")
    c.add_argument("--weights", help="darknet .weights (default: weights/<cfg stem>.weights)")
    c.add_argument("--names", help="class names, one per line (default: class numbers)")
    c.add_argument("--top", type=_positive_threads, default=5, help="classes to print (5)")
    c.add_argument("--threads", type=_positive_threads, help="CPU threads (all cores)")
    c.set_defaults(func=cmd_classify)
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
    except BrokenPipeError:
        # stdout's reader went away (`pydarknet detect ... | head`): stop quietly, like cat
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def run() -> None:
    """The `pydarknet` command (and `python -m pydarknet`): main(), then exit at once.

    The interpreter's finalization would tear down the ~110k objects of Numba, its typing
    registries and the model, all about to go anyway, and run LLVM's C++ destructors, which
    fault back pages of its code released earlier: 20-30 ms and 5.5 MB of peak RSS of a
    one-image `detect` (yolov4-tiny: 98.7 -> 93.1 MB). Everything the commands write is closed
    by then; the Numba set-up thread, which may still be writing the cache, is waited for, the
    atexit functions run (logging's flush, weakref.finalize's, a caller's; ~0.2 ms), and stdout
    and stderr are flushed."""
    code = main()
    from . import threads

    threads.wait_numba_setup()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`): nothing more can go out
            code = code or 141
    os._exit(code)


# Where main() returns to an interpreter that goes on (tests, a caller's script) and exits later:
# its last collections would walk the objects above, all about to go anyway (60-70 ms).
atexit.register(gc.freeze)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"pydarknet: warning: {message}", file=sys.stderr)


# -- helpers -------------------------------------------------------------------------------------
def set_threads(n: int | None) -> None:
    """Set Numba's and BLAS's thread counts together (--threads, or $PYDARKNET_THREADS)."""
    if n is None and os.environ.get("PYDARKNET_THREADS"):
        n = int(os.environ["PYDARKNET_THREADS"])
    from . import threads

    if threads.cache_is_cold():
        print(f"pydarknet: compiling kernels on first use (5-20 s, once; cached in "
              f"{threads.cache_dir()})", file=sys.stderr)  # fmt: skip
    else:  # warm, but this run may need kernels no run has compiled yet
        threads.on_first_compile(lambda: print(
            f"pydarknet: compiling kernels this run needs for the first time (a few seconds, "
            f"once; cached in {threads.cache_dir()})", file=sys.stderr))  # fmt: skip
    if n is not None:
        threads.set_num_threads(n)


def apply_heads(net, spec: str | None) -> None:
    """--heads: keep the listed heads (P levels or positions) and skip what only others need."""
    if not spec:
        return
    levels = net.head_levels()
    keep = []
    for item in spec.replace(" ", "").split(","):
        if item.upper().startswith("P") and item[1:].isdigit():
            if int(item[1:]) not in levels:
                raise DarknetError(f"--heads {spec}: {item} is not a head of {net.cfg_path} "
                                   f"(it has {', '.join(f'P{v}' for v in levels)})")  # fmt: skip
            keep.append(levels.index(int(item[1:])))
        elif item.isdigit():
            keep.append(int(item))
        else:
            raise DarknetError(f"--heads {spec}: expected P levels (P3,P4) or positions (0,1)")
    net.prune(keep)


def default_weights(cfg: str) -> Path:
    """weights/<cfg stem>.weights, next to the current directory or the cfg's parent."""
    stem = Path(cfg).stem
    candidates = [Path("weights") / f"{stem}.weights",
                  Path(cfg).resolve().parent.parent / "weights" / f"{stem}.weights"]  # fmt: skip
    for c in candidates:
        if c.is_file():
            return c
    from .network import Network
    from .zoo import hint

    Network(cfg)  # a broken cfg says so first: no weights would make it run
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
    from .cfg import read_text

    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


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
        elif not p.exists() and any(ch in item for ch in "*?["):
            found = sorted(glob.glob(item, recursive=True))
            if not found:
                raise DarknetError(f"{item}: no file matches this pattern")
            out += found
        else:
            out.append(item)
    return out


# -- commands ------------------------------------------------------------------------------------
def cmd_detect(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    from . import video
    from .network import Network, load

    streams = [x for x in args.inputs if video.is_stream(x)]
    if streams and len(args.inputs) > 1:
        raise DarknetError(f"{streams[0]}: a video, camera or stream must be the only input "
                           f"(got {len(args.inputs)} inputs)")  # fmt: skip
    if streams and (args.dask or args.save_labels):
        raise DarknetError(f"{streams[0]}: --dask and --save-labels apply to images, not video")
    weights = str(args.weights or default_weights(args.cfg))
    paths = [] if streams else expand_inputs(args.inputs)
    if args.dask:
        net = Network(args.cfg)  # the workers load the weights; here only names are needed
    else:  # one image is one forward: Winograd's weight transforms would not pay back
        one = len(paths) == 1 and not args.tta
        net = load(args.cfg, weights, winograd=not one, stream=one)
    apply_heads(net, args.heads)
    if not net.heads:
        raise DarknetError(f"{args.cfg}: has no [yolo] or [region] layer; it is not a detector")
    if net.channels not in (1, 3):
        raise DarknetError(f"{args.cfg}: [net] channels={net.channels}: images go to networks "
                           "of 1 (gray) or 3 (colour) channels")  # fmt: skip
    names = read_names(args.names, net.layers[net.heads[-1]].classes, args.cfg)
    letterbox = True if args.letterbox else None
    if args.dask:
        return _detect_dask(args, weights, names, letterbox)
    from .detector import Detector

    det = Detector(net, names=names, thresh=args.thresh, nms=args.nms, letterbox=letterbox,
                   tta=args.tta)  # fmt: skip
    if streams:
        return _detect_video(args, det, streams[0])
    from .pipeline import detect_paths

    # one image: read here, not on a loader thread (its own malloc arena added 9 MB to peak RSS)
    args.batch = _image_batch(args, len(paths), det)
    results = detect_paths(det, paths, batch=args.batch, keep_images=not args.no_draw,
                           depth=0 if len(paths) == 1 else 2)  # fmt: skip
    return _report_images(args, results, paths, names, local=True)


def _progress(total: int | None, unit: str):
    """A tqdm bar on stderr, shown only on a terminal (disable=None); a no-op without tqdm."""
    isatty = getattr(sys.stderr, "isatty", None)
    if isatty is not None and not isatty():  # what disable=None decides, without tqdm's import
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=unit, disable=None, file=sys.stderr, dynamic_ncols=True)


def _report_images(args, results, paths: list[str], names: list[str], local: bool) -> int:
    """Print each image's detections as they come; failures are reported at the end."""
    from . import postprocess
    from .pipeline import save_outputs

    bar = _progress(len(paths), "img")
    quiet = bar is not None and not bar.disable  # the bar shows progress and speed

    def note(msg: str) -> None:
        (bar.write if quiet else print)(msg, file=sys.stderr)

    frames, failures = [], []
    done, t0 = 0, time.perf_counter()
    try:
        for r in results:
            if bar is not None:
                bar.update(1)
            if r.error is None and local:
                try:
                    out_dir = None if args.no_draw else args.out_dir
                    save_outputs(r, names, out_dir, args.save_labels, args.thresh)
                except DarknetError as e:
                    r.error = str(e)
            if r.error is not None:
                failures.append(r.error)
                if len(paths) > 1:
                    note(f"pydarknet: warning: {r.error}")
                continue
            done += 1
            if not quiet and r.seconds:
                note(f"{r.source}: predicted in {r.seconds * 1000:.1f} ms")
            if args.json:
                frames.append((r.index + 1, r.source, r.detections))
            else:
                print(f"{r.source}:")
                for line in postprocess.format_darknet(r.detections, names, args.thresh,
                                                       args.ext_output):  # fmt: skip
                    print(line)
    finally:
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - t0
        if done > 1:
            how = f"Dask {args.dask}" if args.dask else f"batch {args.batch}, pipelined loader"
            print(f"pydarknet: {done} images in {elapsed:.2f} s: {done / elapsed:.2f} images/s "
                  f"({how})", file=sys.stderr)  # fmt: skip
        if args.json:  # what was detected is printed even when a later image failed
            json.dump(postprocess.to_darknet_json(frames), sys.stdout, indent=1)
            print()
    if failures:
        if len(paths) == 1:
            raise DarknetError(failures[0])
        raise DarknetError(f"{len(failures)} of {len(paths)} inputs failed (listed above); "
                           f"first: {failures[0]}")  # fmt: skip
    return 0


def _detect_dask(args, weights: str, names: list[str], letterbox: bool | None) -> int:
    from .distributed import close, connect, detect_paths

    paths = expand_inputs(args.inputs)
    client = connect(args.dask)
    try:
        results = detect_paths(
            client, args.cfg, weights, paths, names=names, thresh=args.thresh, nms=args.nms,
            letterbox=letterbox, tta=args.tta or None,
            out_dir=None if args.no_draw else str(Path(args.out_dir).resolve()),
            save_labels=args.save_labels,
        )  # fmt: skip
        return _report_images(args, results, paths, names, local=False)
    finally:
        close(client)


def _print_whole(line: str) -> None:
    """Print one line with Ctrl-C held back until it is out: no half JSON line on stdout."""
    mask = getattr(signal, "pthread_sigmask", None)  # POSIX; elsewhere a plain print
    old = mask(signal.SIG_BLOCK, {signal.SIGINT}) if mask else None
    try:
        print(line, flush=True)
    finally:
        if mask:
            mask(signal.SIG_SETMASK, old)


def _detect_video(args, det, spec: str) -> int:
    """Annotated video out, one darknet JSON line per frame on stdout, frames/s on stderr."""
    from . import image, postprocess, video

    src = video.open_source(spec)
    writer = None
    bar = _progress(src.frame_count, "frame")
    done, t0 = 0, time.perf_counter()
    try:
        if not args.no_draw:
            target = args.out_video or str(Path(args.out_dir) / f"{video.describe(spec)}.avi")
            writer = video.VideoWriter(target, src.fps, (src.width, src.height))
        # a file: one frame per thread as for images (+10% frames/s for yolov3-tiny); a camera
        # or a URL is live, where a frame waiting for the next one's arrival adds latency
        live = spec.isdigit() or not Path(spec).is_file()
        frames = max(src.frame_count or 0, 2)  # several, where the file does not say (0, -1)
        batch = args.batch or (1 if live else _image_batch(args, frames, det))
        for fr in video.detect_frames(det, src, batch=batch):
            if writer is not None:
                writer.write(image.draw_detections(fr.image, fr.detections, det.names))
            (line,) = postprocess.to_darknet_json([(fr.frame_id, spec, fr.detections)])
            _print_whole(json.dumps(line))
            done += 1
            if bar is not None:
                bar.update(1)
    finally:
        # release first: the file is finished and playable whatever happened (Ctrl-C too)
        if writer is not None:
            writer.release()
        src.close()
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - t0
        if done:
            kept = f", written to {writer.path}" if writer is not None else ""
            print(f"pydarknet: {done} frames in {elapsed:.2f} s: {done / elapsed:.2f} frames/s"
                  f"{kept}", file=sys.stderr)  # fmt: skip
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    if bool(args.data) == bool(args.annotations) or bool(args.images) != bool(args.annotations):
        raise DarknetError("map needs --data FILE.data, or --images and --annotations")
    from .detector import Detector
    from .detector import read_names as names_of
    from .network import load

    weights = args.weights or default_weights(args.cfg)
    net = load(args.cfg, weights)
    if not net.heads:
        raise DarknetError(f"{args.cfg}: has no [yolo] or [region] layer; it is not a detector")
    classes = net.layers[net.heads[-1]].classes
    if args.data:
        names = names_of(args.data, classes)
    else:
        names = read_names(args.names, classes, args.cfg)
    # detector map / valid: candidates above 0.005, NMS 0.45 of the cfg's kind
    det = Detector(net, names=names, thresh=0.005, nms=0.45,
                   letterbox=True if args.letterbox else None, tta=args.tta)  # fmt: skip
    if args.data:
        return _map_darknet(args, det)
    return _map_coco(args, det)


def _evaluated(det, paths: list[str], batch: int):
    """Detection results for `map`, in order, with a progress bar and images/s on stderr; an
    unreadable image is an error (a score over a partial set would mislead)."""
    from .pipeline import detect_paths

    bar = _progress(len(paths), "img")
    t0 = time.perf_counter()
    try:
        for r in detect_paths(det, paths, batch=batch, keep_images=False):
            if bar is not None:
                bar.update(1)
            if r.error is not None:
                raise DarknetError(r.error)
            yield r
    finally:
        if bar is not None:
            bar.close()
    elapsed = max(time.perf_counter() - t0, 1e-9)
    print(f"pydarknet: {len(paths)} images in {elapsed:.2f} s: {len(paths) / elapsed:.2f} images/s",
          file=sys.stderr)  # fmt: skip


def _map_darknet(args, det) -> int:
    from . import evaluate, labels

    opts = evaluate.read_data_file(args.data)
    if "valid" not in opts:
        raise DarknetError(f"{args.data}: no valid= line (the list of images to evaluate)")
    listing = evaluate.resolve(opts["valid"], Path(args.data).parent)
    paths = [str(evaluate.resolve(p, listing.parent)) for p in _read_lines(listing)]
    if not paths:
        raise DarknetError(f"{listing}: lists no images")
    dets, truths = [], []
    for r in _evaluated(det, paths, _image_batch(args, len(paths), det)):
        truths.append(labels.read_labels(labels.label_path(r.source), det.classes))
        dets.append(r.detections)
    res = evaluate.darknet_map(dets, truths, det.classes, det.names, args.iou_thresh,
                               args.points, args.thresh)  # fmt: skip
    print(res.report())
    return 0


def _map_coco(args, det) -> int:
    from . import evaluate

    gt = evaluate.load_annotations(args.annotations)
    paths = expand_inputs([args.images])
    found = evaluate.match_images(gt, paths, args.annotations)
    if len(found) < len(paths):
        print(f"pydarknet: warning: {len(paths) - len(found)} of {len(paths)} images are not in "
              f"{args.annotations}; they are skipped", file=sys.stderr)  # fmt: skip
    cats = evaluate.match_categories(gt["categories"], det.names)
    if not any(c is not None for c in cats):
        raise DarknetError(
            f"{args.annotations}: no category name matches the model's class names "
            f"(e.g. {det.names[0]!r}); do the annotations match the model?"
        )
    results: list[dict] = []
    ids = []
    for r in _evaluated(det, list(found), _image_batch(args, len(found), det)):
        record = found[r.source]
        evaluate.check_image_size(record, r.source, r.size, args.annotations)
        ids.append(record["id"])
        results += evaluate.coco_results(record["id"], r.detections, cats)
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results), encoding="utf-8")
    except OSError as e:
        raise DarknetError(f"{out}: cannot write: {e.strerror or e}") from None
    print(f"pydarknet: {len(results)} detections written to {out}", file=sys.stderr)
    stats, summary = evaluate.coco_evaluate(gt, results, ids)
    print(summary)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .network import Network

    net = Network(args.cfg)
    apply_heads(net, args.heads)
    size = None
    if args.size:
        size = _parse_size(args.size)
    print(net.summary(size))
    return 0


def _parse_size(text: str) -> tuple[int, int]:
    """WxH -> (h, w)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise DarknetError(f"--size {text}: expected WxH, e.g. 416x416") from None
    return h, w


def cmd_bench(args: argparse.Namespace) -> int:
    """Median forward time (and OpenCV DNN's, interleaved), per-layer times, memory, cold start."""
    set_threads(args.threads)
    import tempfile

    from . import bench, threads
    from .network import Network

    n = threads.num_threads()
    net = Network(args.cfg)
    h, w = _parse_size(args.size) if args.size else (net.height, net.width)
    tmp = tempfile.TemporaryDirectory(prefix="pydarknet-bench-")
    if args.weights:
        weights = args.weights
        net.load_weights(weights)
    else:  # random weights: timing does not depend on the values; OpenCV reads the same file
        weights = net.save_random_weights(Path(tmp.name) / "random.weights")
    apply_heads(net, args.heads)
    x = bench.make_input(args.batch, h, w)
    out = sys.stdout
    what = f"{args.cfg} @{w}x{h}, batch {args.batch}, {n} threads"
    runners = {"pydarknet": net.forward}
    onnx = None  # the .onnx file ONNX Runtime runs
    if args.vs and args.heads:
        raise DarknetError(f"--vs {args.vs[0]} compares whole networks; drop --heads")
    for engine in dict.fromkeys(args.vs):
        try:
            if engine == "opencv":
                runners["opencv"] = bench.opencv_forward(args.cfg, weights, n)
            else:
                onnx = bench.write_onnx(net, h, w, Path(tmp.name) / "model.onnx")
                runners["onnxruntime"] = bench.onnxruntime_forward(onnx, n)
        except DarknetError as e:  # not installed, OpenCV 5, or a cfg or layer it lacks
            label = {"opencv": "OpenCV", "onnxruntime": "ONNX Runtime"}[engine]
            print(f"pydarknet: {label} comparison skipped: {e}", file=sys.stderr)
    print(f"{what}: BFLOPs {net.bflops((h, w)) * args.batch:.2f}", file=out)
    from . import gemm

    print(f"  (Winograd products: {gemm.describe()})", file=out)
    stats = bench.interleaved(runners, x, args.repeat)
    width = max(10, *map(len, stats))
    for name, st in stats.items():
        print(f"  {name:<{width}} median {st.median * 1e3:8.1f} ms  (p10 {st.p10 * 1e3:.1f}, "
              f"p90 {st.p90 * 1e3:.1f}, {args.repeat} runs)", file=out)  # fmt: skip
    for engine in runners:
        if engine != "pydarknet":
            ratio = stats["pydarknet"].median / stats[engine].median
            print(f"  ratio      {ratio:8.2f}  (pydarknet / {engine}; < 1 is faster)", file=out)
    if args.batch > 1:
        print(f"  throughput {args.batch / stats['pydarknet'].median:8.1f} images/s", file=out)
    if args.memory:
        for engine in runners:
            mb = bench.forward_rss(engine, args.cfg, weights, h, w, args.batch, n,
                                   net.kept_heads if args.heads else None, onnx)  # fmt: skip
            print(f"  peak RSS   {engine:<{width}} {mb:6.0f} MB (fresh process, 3 forwards)", file=out)
    if args.cold:
        engines = tuple(e for e in runners if e != "onnxruntime")  # (no detect script for it)
        thresh = 0.25 if args.weights else 1.0  # random weights: no boxes, no NMS storm
        if not args.weights:
            print("  (random weights: cold start runs detect with --thresh 1, so no boxes)",
                  file=out)  # fmt: skip
        for engine, (st, mb) in bench.cold_start(args.cfg, weights, args.cold, w, h, n,
                                                 max(3, args.repeat // 4), engines,
                                                 thresh).items():  # fmt: skip
            print(f"  cold start {engine:<10} median {st.median:6.2f} s (p10 {st.p10:.2f}, "
                  f"p90 {st.p90:.2f}), peak RSS {mb:.0f} MB", file=out)  # fmt: skip
    if args.layers:
        rows = bench.profile_layers(net, x, args.repeat, runners.get("opencv"))
        total = sum(r.seconds for r in rows)
        print(f"  per layer (median of {args.repeat}; sum {total * 1e3:.1f} ms):", file=out)
        theirs = "opencv" in runners
        if theirs:
            cv_total = sum(r.opencv or 0.0 for r in rows)
            print(f"  (last column: OpenCV's time for the same layer, from forwards interleaved "
                  f"with ours; sum {cv_total * 1e3:.1f} ms. Its [yolo] includes box decoding, "
                  f"and a layer it fuses into another shows 0.)", file=out)  # fmt: skip
        for r in rows:
            rate = f"{r.gflops_per_s:7.1f} GFLOP/s" if r.flops else " " * 15
            cv = f"  opencv {r.opencv * 1e3:7.2f} ms" if theirs and r.opencv is not None else ""
            print(f"  {r.index:4d} {r.describe}  {r.seconds * 1e3:7.2f} ms {100 * r.seconds / total:5.1f}%"
                  f" {rate}{cv}", file=out)  # fmt: skip
    tmp.cleanup()
    return 0



def cmd_classify(args: argparse.Namespace) -> int:
    """Print `%5.2f%%: name` for the top classes of each image, as darknet classifier predict."""
    set_threads(args.threads)
    import numpy as np

    from . import image
    from .network import load

    weights = args.weights or default_weights(args.cfg)
    paths = expand_inputs(args.inputs)
    one = len(paths) == 1  # see cmd_detect
    net = load(args.cfg, weights, winograd=not one, stream=one)
    if net.heads:
        raise DarknetError(f"{args.cfg}: has [yolo]/[region] layers; use `pydarknet detect`")
    classes = int(np.prod(net.shapes[net.output_layers[0]]))
    if args.names:
        names = _check_names(_read_lines(Path(args.names)), Path(args.names), classes)
    else:
        names = [str(i) for i in range(classes)]
    for path in paths:
        img = image.load_image(path, net.channels)
        t0 = time.perf_counter()
        top = net.classify(img, min(args.top, classes))
        ms = (time.perf_counter() - t0) * 1000
        print(f"{path}: Predicted in {ms:.1f} ms", file=sys.stderr)
        if len(paths) > 1:
            print(f"{path}:")
        for index, prob in top:
            # pjreddie's predict_classifier format; the float product is C's predictions[i]*100
            print("%5.2f%%: %s" % (float(np.float32(prob) * np.float32(100)), names[index]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
