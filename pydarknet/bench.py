"""Benchmarks behind `pydarknet bench`: forward latency against OpenCV DNN, per-layer profile,
peak memory and cold start. Returns numbers; cli.py prints them.

Timings of two engines are interleaved (A B, B A, A B, ...) in one process with the same thread
count, so a busy neighbour slows both alike; medians are reported with the spread.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DarknetError


@dataclass
class Stats:
    """Seconds per run: median, 10th and 90th percentile over `samples`."""

    samples: list[float]

    @property
    def median(self) -> float:
        return float(np.median(self.samples))

    @property
    def p10(self) -> float:
        return float(np.percentile(self.samples, 10))

    @property
    def p90(self) -> float:
        return float(np.percentile(self.samples, 90))


def make_input(batch: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A random (batch, 3, height, width) float32 image batch in [0, 1]."""
    return np.random.default_rng(seed).random((batch, 3, height, width), dtype=np.float32)


def opencv_available() -> str | None:
    """None if OpenCV's Darknet importer can run, else why not (OpenCV 5 removed it)."""
    try:
        import cv2
    except ImportError:
        return "OpenCV is not installed (pip install 'opencv-python-headless<5')"
    if not hasattr(cv2, "dnn") or not hasattr(cv2.dnn, "readNetFromDarknet"):
        return f"OpenCV {cv2.__version__} has no Darknet importer (it needs OpenCV 4.x)"
    return None


def opencv_forward(cfg: str | Path, weights: str | Path, threads: int):
    """A callable x -> OpenCV DNN's outputs for cfg/weights, on `threads` threads."""
    why = opencv_available()
    if why:
        raise DarknetError(why)
    import cv2

    cv2.setNumThreads(threads)
    try:
        net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    except cv2.error as e:  # a layer or option its importer lacks: reorg3d, implicit_*, ...
        said = str(e).strip().rsplit("error: ", 1)[-1].split(" in function ")[0]
        raise DarknetError(f"OpenCV {cv2.__version__} cannot read {cfg}: {said}") from None
    names = net.getUnconnectedOutLayersNames()

    def run(x: np.ndarray):
        net.setInput(x)
        return net.forward(names)

    run.net = net  # for opencv_layer_seconds
    return run


def onnxruntime_available() -> str | None:
    """None if ONNX Runtime and the onnx package can run a converted network, else why not."""
    for module in ("onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install onnx onnxruntime)"
    return None


def write_onnx(net, height: int, width: int, path: str | Path) -> str:
    """The loaded network converted to ONNX (onnx_export.py), written to path."""
    why = onnxruntime_available()
    if why:
        raise DarknetError(why)
    from .onnx_export import export

    Path(path).write_bytes(export(net, height, width))
    return str(path)


def onnxruntime_forward(model: str, threads: int):
    """A callable x -> ONNX Runtime's outputs for the .onnx file `model` (write_onnx), on
    `threads` threads. Its threads do not spin after a run, as they do by default: spinning
    threads would take the cores from the next engine's interleaved run."""
    why = onnxruntime_available()
    if why:
        raise DarknetError(why)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def run(x: np.ndarray):
        return session.run(names, {"input": x})

    return run


def opencv_layer_seconds(run) -> dict[int, float]:
    """Seconds per darknet layer index of the last forward of an opencv_forward runner, from
    getPerfProfile. OpenCV's importer names each of its layers type_index after the darknet
    layer it comes from (conv_3, concat_6, pool_9, yolo_30); the ones made from one darknet
    layer (a [yolo] is permute_30 and yolo_30) add up. Layers it fused away report 0."""
    import cv2

    net = run.net
    _, per_layer = net.getPerfProfile()
    seconds = np.asarray(per_layer, np.float64).ravel() / cv2.getTickFrequency()
    out: dict[int, float] = {}
    for name, s in zip(net.getLayerNames(), seconds):
        _, _, index = name.rpartition("_")
        if index.isdigit():
            out[int(index)] = out.get(int(index), 0.0) + float(s)
    return out


def interleaved(runners: dict, x: np.ndarray, repeat: int, warmup: int = 2) -> dict[str, Stats]:
    """Time each runner(x) `repeat` times, alternating their order every round."""
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name](x)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeat):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            runners[name](x)
            samples[name].append(time.perf_counter() - t0)
    return {name: Stats(s) for name, s in samples.items()}


@dataclass
class LayerTime:
    index: int
    kind: str
    describe: str
    seconds: float  # median
    flops: float
    opencv: float | None = None  # OpenCV DNN's median for the same darknet layer, if timed

    @property
    def gflops_per_s(self) -> float:
        return self.flops / self.seconds / 1e9 if self.seconds > 0 and self.flops else 0.0


def profile_layers(net, x: np.ndarray, repeat: int, opencv=None) -> list[LayerTime]:
    """Median time of every computed layer over `repeat` forward passes (after one warm-up),
    and with an opencv_forward runner, OpenCV's per layer from forwards interleaved with ours."""
    net.forward(x)
    if opencv is not None:
        opencv(x)
    runs: dict[int, list[float]] = {}
    theirs: dict[int, list[float]] = {}
    for _ in range(repeat):
        profile: list = []
        net.forward(x, profile=profile)
        for i, seconds in profile:
            runs.setdefault(i, []).append(seconds)
        if opencv is not None:
            opencv(x)
            for i, seconds in opencv_layer_seconds(opencv).items():
                theirs.setdefault(i, []).append(seconds)
    shapes = net.infer_shapes(*x.shape[2:])
    prevs = [(net.channels, *x.shape[2:])] + shapes[:-1]
    out = []
    for i, samples in sorted(runs.items()):
        layer = net.layers[i]
        flops = layer.flops(prevs[i], shapes[i]) * x.shape[0]
        kind = layer.section.kind
        cv = float(np.median(theirs[i])) if i in theirs else None
        out.append(LayerTime(i, kind, layer.describe(prevs[i], shapes[i]),
                             float(np.median(samples)), flops, cv))  # fmt: skip
    return out


# -- separate processes: peak memory and cold start ---------------------------------------------
# A child's peak RSS is read from its own /proc/self/status (VmHWM) at exit: getrusage and wait4
# report the largest RSS the process ever had, including the parent's memory before exec.
_HWM_PRELUDE = """
import atexit, os, sys
@atexit.register
def _report_peak():
    try:
        with open("/proc/self/status") as f, open(os.environ["PYDARKNET_HWM_FILE"], "w") as out:
            out.write(f.read())
    except (OSError, KeyError):
        pass
"""


def run_measured(code: str, args: list[str], env: dict | None = None) -> tuple[float, float]:
    """Run `python -c code args...` and return (wall seconds, its peak RSS in MB or nan)."""
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".status") as status:
        env = dict(os.environ if env is None else env, PYDARKNET_HWM_FILE=status.name)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _HWM_PRELUDE + code, *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace")[-800:]
            raise DarknetError(f"benchmark child {args[:3]} failed ({proc.returncode}): {tail}")
        peak = float("nan")
        for line in status.read().splitlines():
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024  # kB
    return seconds, peak


def forward_rss(engine: str, cfg, weights, height: int, width: int, batch: int,
                threads: int, heads: list[int] | None = None,
                onnx: str | None = None) -> float:  # fmt: skip
    """Peak RSS (MB) of a fresh process that loads the model and runs 3 forward passes
    (ONNX Runtime's loads the .onnx file `onnx`: no pydarknet network in its memory)."""
    code = (
        "from pydarknet.bench import _forward_child\n"
        f"_forward_child({engine!r}, {str(cfg)!r}, {str(weights)!r}, {height}, {width}, "
        f"{batch}, {threads}, {heads!r}, {onnx!r})"
    )
    return run_measured(code, [])[1]


def _forward_child(engine, cfg, weights, height, width, batch, threads, heads, onnx=None):
    x = make_input(batch, height, width)
    if engine == "pydarknet":
        from . import threads as th
        from .network import load

        th.set_num_threads(threads)
        net = load(cfg, weights)
        if heads is not None:
            net.prune(heads)
        run = net.forward
    elif engine == "onnxruntime":
        run = onnxruntime_forward(onnx, threads)
    else:
        run = opencv_forward(cfg, weights, threads)
    for _ in range(3):
        run(x)


# A Python script doing what `pydarknet detect` does, with OpenCV DNN: read, resize, forward,
# decode, NMS, print. The cold-start yardstick of issue 4.
OPENCV_DETECT = r"""
import sys, cv2, numpy as np
cfg, weights, path, w, h, threads, thresh = sys.argv[1:8]
cv2.setNumThreads(int(threads))
net = cv2.dnn.readNetFromDarknet(cfg, weights)
img = cv2.imread(path)
blob = cv2.dnn.blobFromImage(img, 1 / 255.0, (int(w), int(h)), swapRB=True, crop=False)
net.setInput(blob)
outs = net.forward(net.getUnconnectedOutLayersNames())
boxes, scores, ids = [], [], []
for out in outs:
    for row in out:
        cls = int(np.argmax(row[5:]))
        if row[5 + cls] > float(thresh):
            cx, cy, bw, bh = row[:4] * [img.shape[1], img.shape[0], img.shape[1], img.shape[0]]
            boxes.append([int(cx - bw / 2), int(cy - bh / 2), int(bw), int(bh)])
            scores.append(float(row[5 + cls]))
            ids.append(cls)
for i in cv2.dnn.NMSBoxes(boxes, scores, float(thresh), 0.45):
    print(ids[i], scores[i], boxes[i])
"""


def cold_start(cfg, weights, image, width: int, height: int, threads: int, repeat: int,
               engines: tuple[str, ...] = ("pydarknet", "opencv"),
               thresh: float = 0.25) -> dict[str, tuple]:  # fmt: skip
    """Process start to exit for one image, interleaved: {engine: (Stats of seconds, peak MB)}.

    With random weights pass thresh=1.0: nothing passes, so neither side spends its time in NMS
    over thousands of random boxes."""
    env = dict(os.environ, PYDARKNET_THREADS=str(threads))
    runs = {
        "pydarknet": ("import runpy\nrunpy.run_module('pydarknet', run_name='__main__')",
                      ["detect", str(cfg), str(image), "--weights", str(weights), "--no-draw",
                       "--threads", str(threads), "--thresh", str(thresh)]),
        "opencv": (OPENCV_DETECT, [str(cfg), str(weights), str(image), str(width), str(height),
                                   str(threads), str(thresh)]),
    }  # fmt: skip
    times: dict[str, list[float]] = {e: [] for e in engines}
    rss: dict[str, float] = {e: 0.0 for e in engines}
    for e in engines:
        run_measured(*runs[e], env)  # warm the Numba cache and the page cache
    for r in range(repeat):
        for e in engines if r % 2 == 0 else engines[::-1]:
            seconds, mb = run_measured(*runs[e], env)
            times[e].append(seconds)
            rss[e] = max(rss[e], mb)
    return {e: (Stats(times[e]), rss[e]) for e in engines}
