"""One class per darknet cfg section: parse options, infer shapes, load weights, forward.

Every class follows the same contract (see STYLE.md):
  from_cfg(s, ctx)        parse and validate the section's options (parser.c parse_*)
  infer(shapes, prev)     output shape (c, h, w) for the given input shapes; raises CfgError
  params()                [(name, count)] in the order darknet stores them in .weights
  load(arrays)            take the parameters (dict name -> float32 array)
  forward(x, outputs, out, ws)  x: (N, c, h, w) previous output; writes and returns out
Outputs are (N, c, h, w) float32, C-contiguous.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numba
import numpy as np

from . import gemm, kernels, postprocess, threads
from .cfg import Section
from .errors import CfgError

Shape = tuple[int, int, int]  # (c, h, w)

# Floats of im2col matrix per convolution step (1 << 19 = 2 MB, in L3 with the GEMM's panels).
# The workspace holds one step per thread. Against 4 MB steps, in one run: the same speed with
# Winograd (yolov4-tiny, csp 377 vs 386 ms), 1.5-4% slower im2col-only forwards (a one-image
# detect: yolov3-tiny 43.1 vs 42.5 ms, csp 578 vs 556), and 4 MB less peak RSS (yolov4-tiny's
# one-image detect 136 -> 132 MB).
CHUNK_FLOATS = 1 << 19
# Fewest Winograd tiles per step: narrower GEMMs run well under BLAS's peak.
MIN_TILES = 96
# Fewest tiles in a Winograd step that splits the rows left over after the threads' equal
# shares by filters (_tile_steps): narrower GEMMs run far under peak.
REST_TILES = 24
# A 1x1 convolution with fewer filters than this is split by output columns, not by filters:
# OpenBLAS runs (128 x 128) @ (128 x 1024) at ~85 GFLOP/s per core, (32 x 128) @ (128 x 4096)
# at ~70; from 256 filters the two splits are even.
SPLIT_FILTERS_FROM = 256
STEP_COLUMNS = 1024  # the fewest output columns per step of such a split
# Fewer multiply-adds than this (a squeeze-and-excitation 1x1 on a 1x1 map): one step, on the
# calling thread; handing out parts took 4x the work's own time (0.11 vs 0.03 ms).
SMALL_MACS = 1 << 16


# Where the packed GEMM is in use, Winograd and 1x1 layers' steps run as pool jobs whole in the
# JIT (Convolutional._winograd_jit, _direct_jit); False: Python steps (tests compare the two).
JIT_JOBS = True
_MAKING_U = threading.Lock()
# a convolution's weights read again from the file (taken under _MAKING_U, never around it)
_READING = threading.Lock()
_scratch = threading.local()


def act_scratch() -> tuple[np.ndarray, np.ndarray]:
    """This thread's scratch for kernels.bias_activate and kernels.activate: float32
    (ACT_SCRATCH,) and its second half seen as int32, made once per thread (the kernels
    allocate nothing, see kernels.ACT_SCRATCH)."""
    pair = getattr(_scratch, "act", None)
    if pair is None:
        f = np.empty(kernels.ACT_SCRATCH, np.float32)
        pair = _scratch.act = (f, f[kernels.ACT_SCRATCH // 2 :].view(np.int32))
    return pair


def aligned_empty(n: int) -> np.ndarray:
    """An uninitialised float32 array of n values starting on a 64-byte boundary (numpy's own
    start 16 bytes past one): the vector kernels' loads of rows a multiple of 8 floats long
    then never cross a cache line (kernels.tile_row_floats)."""
    buf = np.empty(n + 16, np.float32)
    skip = (-buf.ctypes.data % 64) // 4
    return buf[skip : skip + n]


def gemm_scratch(k: int) -> np.ndarray:
    """This thread's scratch for gemm products k deep (grown as needed, kept)."""
    buf = getattr(_scratch, "gemm", None)
    need = gemm.scratch_floats(k)
    if buf is None or buf.shape[0] < need:
        buf = _scratch.gemm = np.empty(need, np.float32)
    return buf


def _job_scratch(slots: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A JIT job's per-thread scratch rows: bias_activate's, and the packed GEMM's for products
    k deep (act_scratch and gemm_scratch are per Python thread; a job's threads index rows)."""
    return (_job_buffer("act", (slots, kernels.ACT_SCRATCH)),
            _job_buffer("gemm", (slots, gemm.scratch_floats(k))))  # fmt: skip


def _job_buffer(name: str, shape: tuple, dtype=np.float32) -> np.ndarray:
    """Scratch of a JIT job this thread starts: made once per name and shape, then reused (its
    job has ended when the next one starts). A forward allocated ~60 such arrays, the larger
    ones fresh pages each time."""
    made = getattr(_scratch, "jobs", None)
    if made is None:
        made = _scratch.jobs = {}
    buf = made.get((name, shape))
    if buf is None:
        buf = made[(name, shape)] = np.empty(shape, dtype)
    return buf


def _c_calls(*names: str) -> tuple[int, ...]:
    """kernels.c_address of each name, looked up once per process (a forward asked 67 times)."""
    calls = _C_CALLS.get(names)
    if calls is None:
        calls = _C_CALLS[names] = tuple(kernels.c_address(name) for name in names)
    return calls


_C_CALLS: dict[tuple, tuple] = {}


def _rows_per_step(total: int, per_row: int, slots: int) -> int:
    """Rows per pool step: about CHUNK_FLOATS each, in a multiple of `slots` steps if several."""
    steps = max(1, -(-total * per_row // CHUNK_FLOATS))
    if steps > 1:
        steps = -(-steps // slots) * slots
    return max(1, -(-total // steps))


def _filter_step(n: int, slots: int) -> int:
    """Filters per step of a small map's Winograd products: one part per thread, whole GEMM
    blocks."""
    return -(-n // slots // gemm.MR) * gemm.MR


def _tile_rows_per_step(th: int, tw: int, per_row: int, slots: int) -> int:
    """Winograd tile rows per pool step: about CHUNK_FLOATS of workspace but >= MIN_TILES tiles
    (the GEMMs' width), in a multiple of `slots` steps where there are more steps than slots:
    3 steps on 2 threads leave one idle for a third of the layer (yolov4-csp's 64x64 maps)."""
    rows = max(_rows_per_step(th, per_row, slots), -(-MIN_TILES // tw))
    steps = -(-th // rows)
    if steps > slots and steps % slots:
        steps = steps // slots * slots  # fewer, larger steps
    return -(-th // steps)  # steps of even size: 19 rows in 4 steps are 5 5 5 4, not 6 6 6 1


def _tile_steps(th: int, tw: int, n: int, rows: int, slots: int) -> np.ndarray:
    """Winograd steps (ty0, ty1, f0, f1): tile rows ty0..ty1 of filters f0..f1, in an equal
    share per thread. Each thread's whole rows, th // slots, go in steps of at most `rows`
    (>= MIN_TILES tiles where there are enough), their sizes as even as can be, in rounds of
    `slots` steps of one size, largest first: threads that take turns end together. The rows
    left over (th % slots, widened to >= REST_TILES tiles) come last, split by filters (whole
    GEMM blocks), one part per thread. Cut by rows alone, a thread could get a step more:
    26 rows in steps of 5 5 5 5 5 1 are 15 rows against 11 (yolov4-tiny's 104x104 layers)."""
    rest = th % slots
    while rest and rest * tw < REST_TILES and rest + slots <= th:
        rest += slots
    share = (th - rest) // slots
    steps = []
    if share:
        k = -(-share // rows)
        if share // k < -(-MIN_TILES // tw):
            k = max(1, share // -(-MIN_TILES // tw))
        ty = 0
        for j in range(k):
            size = share // k + (j < share % k)
            for _ in range(slots):
                steps.append((ty, ty + size, 0, n))
                ty += size
    if rest:
        part = -(-n // slots // gemm.MR) * gemm.MR
        steps += [(th - rest, th, f0, min(n, f0 + part)) for f0 in range(0, n, part)]
    return np.array(steps, np.int64).reshape(-1, 4)


# G of F(2x2, 3x3), F(4x4, 3x3) and stride-2 F(2x2, 3x3) by input tile side (the B^T and A^T
# they pair with are kernels.winograd_input/output, winograd4_*, winograd_s2_*)
_G_3X3 = {
    4: np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]]),
    6: np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                 [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
    5: np.array([[1, 0, 0], [1, 0, 1], [0, 0, 1], [0, 1, 0], [0, 1, 0]], np.float64),
}  # fmt: skip


def winograd_weights(g: np.ndarray, side: int) -> np.ndarray:
    """U = G g G^T (side^2, k) float32 of every 3x3 kernel g (k, 9), summed in float64
    (kernels.winograd_weights)."""
    out = np.empty((side * side, g.shape[0]), np.float32)
    kernels.winograd_weights(np.ascontiguousarray(g, np.float32), _G_3X3[side], out)
    return out


# G of Winograd F(4, 2) for the points 0, 1, -1, 2 and infinity (kernels._bt5f, _at5f)
_G_F42 = np.array([[0.5, 0.0], [-0.5, -0.5], [-1 / 6, 1 / 6], [1 / 6, 1 / 3], [0.0, 1.0]])


def _phase_taps(pad: int):
    """(ky, kx, py, px, ay, ax) for each tap of a 3x3 kernel at stride 2: tap ky meets row
    phase py = (ky - pad) % 2 at phase tap ay = (ky - pad) // 2 - (-pad) // 2 (0 or 1), the
    same along x."""
    a0 = (-pad) // 2
    for ky in range(3):
        ay, py = divmod(ky - pad - 2 * a0, 2)
        for kx in range(3):
            ax, px = divmod(kx - pad - 2 * a0, 2)
            yield ky, kx, py, px, ay, ax


def _phase_weights(w: np.ndarray, pad: int) -> np.ndarray:
    """U = G g' G^T (25, filters, 4c) of stride-2 F(4x4, 2x2) from 3x3 weights w (filters, c,
    3, 3), each tap at its phase and phase tap (_phase_taps); phase channel 4 ch + 2 py + px.
    Summed in float64 (kernels.winograd_s2f4_input)."""
    n, c = w.shape[:2]
    g = np.zeros((n, c, 2, 2, 2, 2))  # [filter, channel, py, px, tap y, tap x]
    for ky, kx, py, px, ay, ax in _phase_taps(pad):
        g[:, :, py, px, ay, ax] = w[:, :, ky, kx]
    u = np.einsum("ia,jb,ocyxab->ijocyx", _G_F42, _G_F42, g)
    return u.reshape(25, n, 4 * c).astype(np.float32)


def _phase_rows(pad: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Where stride-2 F(4x4, 2x2)'s V (and U) keep each element's phase channels, and how deep
    its product is: (rows_of (25, 4, 2), depths (25,)), int64. A phase whose taps all meet
    zeros of G in an element (pad 1: the row phase with one tap in element row 0, the column
    phase with one tap in column 0) has U = 0 there whatever the weights: of the 100 (element,
    phase) pairs 19 are such. Each element's other phases come first, channel-major (row
    ch * live + rank), its dead ones after them (row c * live + ch * (4 - live) + rank); its
    product reads the first c * live rows: 81 of the 100 products' depth."""
    taps = np.zeros((2, 2, 2, 2), np.int64)  # [py, px, tap y, tap x]: the phase's taps
    for _, _, py, px, ay, ax in _phase_taps(pad):
        taps[py, px, ay, ax] = 1
    nonzero = (_G_F42 != 0).astype(np.int64)
    used = np.einsum("ia,jb,pqab->ijpq", nonzero, nonzero, taps).reshape(25, 4) > 0
    rows_of = np.empty((25, 4, 2), np.int64)
    depths = np.empty(25, np.int64)
    for e in range(25):
        live = [p for p in range(4) if used[e, p]]
        dead = [p for p in range(4) if not used[e, p]]
        for rank, p in enumerate(live):
            rows_of[e, p] = (len(live), rank)
        for rank, p in enumerate(dead):
            rows_of[e, p] = (len(dead), c * len(live) + rank)
        depths[e] = c * len(live)
    return rows_of, depths


def compiled_jobs() -> bool:
    """Whether the layers other than convolutions run their steps as compiled pool jobs
    (threads.Pool.run_jit): the JIT on and JIT_JOBS."""
    return JIT_JOBS and not numba.config.DISABLE_JIT


def _channel_pool(layer: Layer) -> threads.Pool | None:
    """The pool a maxpool's, shortcut's or upsample's compiled job splits its channels over,
    or None: Python steps (no JIT, or Network.winograd = False), or a pool of one (a layer run
    alone, a batch's image per thread), where the kernel is called directly and no job needs
    compiling."""
    pool = threads.pool()
    return pool if pool.size > 1 and layer.use_jobs and compiled_jobs() else None


def _run_channels(pool: threads.Pool, kernel, c: int, *args) -> None:
    """kernel(state, slot, per, *args), a kernels.*_job over c channels (or rows), `per` a
    step, two steps per thread (as in_steps(c, ..., 2))."""
    per = max(1, -(-c // (2 * pool.size)))
    pool.run_jit(kernel, -(-c // per), per, *args)


def in_steps(total: int, run, per_thread: int = 4) -> None:
    """run(lo, hi) over ranges of 0..total (channels, kernels or pixels) on the pool's threads,
    `per_thread` steps per thread: with several, one started late still gets a share. The
    kernels run single-threaded and released from the GIL, as in a batch whose images run one
    per thread."""
    pool = threads.pool()
    per = max(1, -(-total // (per_thread * pool.size)))
    pool.run(lambda i, slot: run(i * per, min(total, (i + 1) * per)), -(-total // per))


ACTIVATIONS = {
    "linear": kernels.LINEAR, "leaky": kernels.LEAKY, "relu": kernels.RELU,
    "logistic": kernels.LOGISTIC, "mish": kernels.MISH, "swish": kernels.SWISH,
    "relu6": kernels.RELU6, "elu": kernels.ELU, "selu": kernels.SELU, "gelu": kernels.GELU,
    "hard_mish": kernels.HARD_MISH, "relie": kernels.RELIE, "ramp": kernels.RAMP,
    "tanh": kernels.TANH, "plse": kernels.PLSE, "lhtan": kernels.LHTAN, "loggy": kernels.LOGGY,
    "stair": kernels.STAIR, "hardtan": kernels.HARDTAN,
    "revleaky": kernels.LEAKY,  # activations.c: activate() treats REVLEAKY as LEAKY
}  # fmt: skip
# Cross-channel activations (activations.c activate_array_normalize_channels*): darknet applies
# them only in [convolutional]; value = the kernels.normalize_channels mode.
NORM_CHANS = {
    "normalize_channels": 0, "normalize_channels_softmax": 1,
    "normalize_channels_softmax_maxval": 2,
}  # fmt: skip

# Keys that only matter for training: accepted silently in any section (parser.c reads them
# into fields that forward passes on CPU inference never touch).
TRAINING_KEYS = frozenset(
    """stopbackward dont_update train_only_bn train burnin learning_rate_scale dontload
    dontloadscales numload tune_only stopbackward_layers onlyforward""".split()
)


@dataclass
class Ctx:
    """What from_cfg may look at: this layer's index, earlier shapes, the [net] input."""

    index: int
    shapes: list[Shape]
    prev: Shape
    sections: list[Section]


def _activation(s: Section, default: str) -> int:
    name = s.get_str("activation", default)
    if name in NORM_CHANS:
        raise s.error(
            "activation", f"darknet applies {name} only in [convolutional] (elsewhere its CPU "
            "path outputs 0)",
        )  # fmt: skip
    if name not in ACTIVATIONS:
        hint = " (darknet would use relu)"
        if name == "silu":  # PyTorch's name, in YOLOv7's own cfgs
            hint = "; silu is darknet's swish (darknet itself would use relu)"
        raise s.error(
            "activation",
            f"unknown activation{hint}; supported: {', '.join(sorted(ACTIVATIONS))}",
        )
    return ACTIVATIONS[name]


def _refuse(s: Section, key: str, default, why: str = "is not supported for inference yet"):
    """Options that change inference and are not implemented: an error, never dropped."""
    if s.has(key):
        value = s.get_str(key)
        if value != str(default):
            raise s.error(key, why)


def _layer_index(s: Section, key: str, value: int, ctx: Ctx) -> int:
    """darknet parse_route: negative is relative to this layer, 0 or positive is absolute."""
    index = ctx.index + value if value < 0 else value
    if not 0 <= index < ctx.index:
        raise s.error(
            key, f"layer {value} is out of range: layer {ctx.index} can use layers 0..{ctx.index - 1}"
        )
    return index


class Layer:
    """Defaults shared by every layer class."""

    IGNORED: frozenset[str] = frozenset()
    PASSTHROUGH = False  # forward returns its input unchanged: no output buffer
    KIND = ""  # the name darknet prints in its layer table ("" = the class name)
    section: Section
    inputs: list[int]  # absolute indices of earlier layers read besides the previous one

    def params(self) -> list[tuple[str, int]]:
        return []

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        """Take this layer's parameters (params() order and sizes), fresh arrays that are the
        layer's to keep or change in place: a model-sized copy would stay as heap holes."""

    def locate(self, places: dict) -> None:
        """After load(): where each parameter is in the .weights file (weights.FloatsAt, or None
        when the file cannot be read again), for a layer that frees one and re-reads it."""

    # parameters load() may be given without (read from the file when first used, after
    # locate() has said where): Network.load_weights(stream=True)
    STREAMED: tuple[str, ...] = ()

    def drop_streamed(self) -> None:
        """Free the streamed parameters read since load(); they are read again when needed."""

    def wants_streamed(self) -> bool:
        """Whether a forward reads the streamed parameters (not where a form made from them
        has replaced them)."""
        return True

    def workspace(self, prev: Shape, out: Shape) -> int:
        return 0

    def flops(self, prev: Shape, out: Shape) -> float:
        """Floating-point operations as darknet counts them (its l.bflops * 1e9); most are 0."""
        return 0.0

    def set_header(self, header) -> None:
        """Called with the .weights header before load() ([connected] reads `transpose`)."""

    def error(self, key: str | None, message: str) -> CfgError:
        return self.section.error(key, message)

    def describe(self, prev: Shape, out: Shape) -> str:
        """One row of the layer table: type, filters, size/stride or inputs, input -> output,
        in the columns of darknet's own table (parser.c and the make_*_layer prints)."""
        name = self.KIND or type(self).__name__.lower()
        extra = ""
        if hasattr(self, "size") and hasattr(self, "stride_x"):
            if self.stride_x == self.stride_y:
                extra = f"{self.size:2d} x{self.size:2d}/{self.stride_x:2d}"
                if getattr(self, "dilation", 1) > 1:
                    extra += f"({self.dilation})"
            else:
                extra = f"{self.size:2d}x{self.size:2d}/{self.stride_x:2d}x{self.stride_y:d}"
        elif getattr(self, "inputs", None):
            extra = " ".join(str(i) for i in self.inputs)
            if getattr(self, "group_id", None) is not None and self.groups > 1:
                extra += f" {self.group_id}/{self.groups}"  # route_layer: part group_id of groups
        elif getattr(self, "stride", None):
            up = self.KIND == "upsample" and self.stride > 0  # reorg and downsample divide
            extra = f"{self.stride:2d}x" if up else f"/{abs(self.stride)}"
        filters = getattr(self, "filters", "")
        if filters and getattr(self, "groups", 1) > 1:
            filters = f"{filters}/{self.groups}"
        # a long name (Gaussian_yolo) takes the empty filters column, so the sizes stay aligned
        head = f"{name:<9} {filters!s:>9}" if filters else f"{name:<19}"
        return (f"{head} {extra:<13} {prev[2]:4d} x{prev[1]:4d} x{prev[0]:4d} ->"
                f" {out[2]:4d} x{out[1]:4d} x{out[0]:4d}")


@dataclass
class Convolutional(Layer):
    """[convolutional]: im2col + BLAS GEMM, batch norm folded at load (convolutional_layer.c)."""

    KIND = "conv"
    section: Section
    filters: int
    size: int
    stride_x: int
    stride_y: int
    dilation: int
    padding: int
    groups: int
    batch_normalize: bool
    activation: int
    c: int = 0
    inputs: list[int] = field(default_factory=list)
    _weights: np.ndarray | None = None  # see the weights property
    biases: np.ndarray | None = None
    flipped: bool = False  # parser.c: the file stores the weights transposed, (c*size*size, n)
    _factor: np.ndarray | None = None  # float64 batch-norm scale folded into the weights
    _weights_at: object = None  # weights.FloatsAt of the raw weights, to read them again
    # forms made from the weights, in their place (reset by the weights setter)
    _winograd_u: dict | None = None  # Winograd's U by tile size
    _packed: np.ndarray | None = None  # a 1x1 layer's packed weights
    _taps: np.ndarray | None = None  # a few-channel layer's tap weights
    use_winograd: bool = True  # Network.winograd

    # assisted_excitation only acts when training; angle/reverse/grad_centr/dot are for training
    # and deformable training; stream/wait_stream pick CUDA streams
    IGNORED = frozenset(
        """binary xnor bin_output assisted_excitation angle reverse grad_centr dot stream
        wait_stream""".split()
    )

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Convolutional:
        filters = s.get_int("filters", 1)
        size = s.get_int("size", 1)
        stride = s.get_int("stride", 1)
        stride_x = s.get_int("stride_x", stride)
        stride_y = s.get_int("stride_y", stride)
        dilation = s.get_int("dilation", 1)
        if size == 1:
            dilation = 1  # parser.c: a 1x1 kernel ignores dilation
        pad = s.get_int("pad", 0)
        padding = s.get_int("padding", 0)
        if pad:
            padding = size // 2  # parser.c: pad=1 means "same" padding
        groups = s.get_int("groups", 1)
        bn = bool(s.get_int("batch_normalize", 0))
        if s.get_int("cbn", 0):
            bn = True  # parser.c: cbn sets batch_normalize=2, the same at inference
        norm_mode = NORM_CHANS.get(s.get_str("activation", "logistic"), -1)
        act = kernels.LINEAR if norm_mode >= 0 else _activation(s, "logistic")  # OpenCV: linear
        antialiasing = s.get_int("antialiasing", 0)
        for key in ("binary", "xnor"):
            if s.get_int(key, 0):
                raise s.error(key, "XNOR/binary convolutions are not supported")
        if antialiasing not in (0, 1, 2):
            raise s.error("antialiasing", "expected 0, 1 (3x3 blur) or 2 (2x2 blur)")
        _refuse(s, "share_index", -1000000000, "shared weights are not supported")
        _refuse(s, "coordconv", 0)
        _refuse(s, "deform", 0)
        for key in ("sway", "rotate", "stretch", "stretch_sway"):
            _refuse(s, key, 0)
        if filters < 1:
            raise s.error("filters", "must be >= 1")
        if size < 1:
            raise s.error("size", "must be >= 1")
        if stride_x < 1 or stride_y < 1:
            raise s.error("stride", "must be >= 1")
        if dilation < 1:
            raise s.error("dilation", "must be >= 1")
        if groups < 1 or filters % groups:
            raise s.error("groups", f"must divide filters={filters}")
        c = ctx.prev[0]
        if c % groups:
            raise s.error("groups", f"must divide the {c} input channels")
        # convolutional_layer.c: im2col pads by pad*dilation; self.padding is that im2col padding
        padding *= dilation
        flipped = bool(s.get_int("flipped", 0))
        if norm_mode < 0 and not antialiasing:
            return cls(s, filters, size, stride_x, stride_y, dilation, padding, groups, bn, act, c,
                       flipped=flipped)  # fmt: skip
        from .layers_more import ConvolutionalPost

        # make_convolutional_layer: with antialiasing the host conv runs at stride 1
        host_stride = (1, 1) if antialiasing else (stride_x, stride_y)
        return ConvolutionalPost(s, filters, size, *host_stride, dilation, padding, groups, bn,
                                 act, c, flipped=flipped, norm_mode=norm_mode,
                                 antialiasing=antialiasing, blur_stride_x=stride_x,
                                 blur_stride_y=stride_y)  # fmt: skip

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        c, h, w = prev
        if c != self.c:
            raise self.error(None, f"input has {c} channels, the weights were built for {self.c}")
        # convolutional_out_height ignores dilation: (h + 2*pad - size)/stride + 1 ...
        pad = self.padding // self.dilation
        out_h = (h + 2 * pad - self.size) // self.stride_y + 1
        out_w = (w + 2 * pad - self.size) // self.stride_x + 1
        if out_h < 1 or out_w < 1:
            raise self.error("size", f"kernel {self.size} does not fit a {h}x{w} input")
        if self.dilation > 1:
            # ... while im2col_cpu_ext fills (h + 2*pad*dil - span)/stride + 1 rows per column;
            # when they differ darknet's GEMM reads a mis-shaped matrix (odd size with pad=1 agrees)
            span = self.dilation * (self.size - 1) + 1
            rows = (h + 2 * self.padding - span) // self.stride_y + 1
            cols = (w + 2 * self.padding - span) // self.stride_x + 1
            if (rows, cols) != (out_h, out_w):
                raise self.error(
                    "dilation", f"darknet's output size {out_w}x{out_h} and its dilated im2col "
                    f"({cols}x{rows}) disagree for this size/pad; use an odd size with pad=1",
                )  # fmt: skip
        return (self.filters, out_h, out_w)

    @property
    def fan_in(self) -> int:
        """Inputs feeding one output value (for random test weights)."""
        return self.c // self.groups * self.size * self.size

    @property
    def depthwise(self) -> bool:
        """One input channel per group (MobileNet, EfficientNet): kernels.depthwise."""
        return self.groups > 1 and self.c == self.groups

    @property
    def direct(self) -> bool:
        """1x1, stride 1, no padding: the input already is the im2col matrix (darknet does this)."""
        return self.size == 1 and self.stride_x == 1 and self.stride_y == 1 and self.padding == 0

    def params(self) -> list[tuple[str, int]]:
        n = self.filters
        out = [("biases", n)]
        if self.batch_normalize:
            out += [("scales", n), ("rolling_mean", n), ("rolling_variance", n)]
        out.append(("weights", n * (self.c // self.groups) * self.size * self.size))
        return out

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        b = arrays["biases"]
        self._factor = None
        if self.batch_normalize:
            # network.c fuse_conv_batchnorm: in double, eps .00001
            scale = arrays["scales"].astype(np.float64)
            std = np.sqrt(arrays["rolling_variance"].astype(np.float64) + 0.00001)
            b = b - scale * arrays["rolling_mean"] / std
            self._factor = scale / std
        # the setter forgets any older file place; streamed weights: locate() gives theirs
        self.weights = self._fold(arrays["weights"]) if "weights" in arrays else None
        self.biases = np.ascontiguousarray(b, dtype=np.float32)

    def _fold(self, w: np.ndarray) -> np.ndarray:
        """The file's weights -> (groups, filters/groups, c/groups*size*size), batch norm folded."""
        n, g = self.filters, self.groups
        if self.flipped:  # parser.c load_convolutional_weights: transpose_matrix(w, c*s*s, n)
            w = w.reshape(-1, n).T
        w = np.ascontiguousarray(w.reshape(n, -1), dtype=np.float32)
        if self._factor is not None:
            for f0 in range(0, n, 64):  # in place, 64 filters at a time, each product in double
                part = w[f0 : f0 + 64]
                np.multiply(part, self._factor[f0 : f0 + 64, None], out=part, casting="unsafe")
        return w.reshape(g, n // g, -1)

    def locate(self, places: dict) -> None:
        self._weights_at = places.get("weights")

    @property
    def weights(self) -> np.ndarray | None:
        """(groups, filters/groups, c/groups*size*size), batch norm folded. Weights once: when a
        Winograd transform replaces them in memory they are freed, and read again from the
        .weights file (bit-identical) only if something asks for them."""
        if self._weights is None and self._weights_at is not None:
            with _READING:  # once, whichever thread asks first (a pool step, the prefetch)
                if self._weights is None and self._weights_at is not None:
                    what = (f"[{self.section.kind}] weights "
                            f"({self.section.path}:{self.section.where()})")  # fmt: skip
                    self._weights = self._fold(self._weights_at.read(what))
        return self._weights

    @weights.setter
    def weights(self, value: np.ndarray | None) -> None:
        self._weights = value
        self._weights_at = None  # set by hand: nothing to read back
        self._winograd_u = None
        self._packed = None
        self._taps = None

    def workspace(self, prev: Shape, out: Shape) -> int:
        slots = threads.pool().size
        if self.few_channels_direct(out):
            return 0
        tile = self.winograd_tile(out)
        if tile:
            steps, per_slot = self._winograd_steps(out, tile, slots)
            return per_slot if steps is None else slots * per_slot
        if self.direct or self.depthwise:
            return 0
        # one im2col step per pool thread (>= the whole matrix when it is cut in fewer steps)
        per_row = prev[0] * self.size * self.size * out[2]
        return slots * per_row * _rows_per_step(out[1], per_row, slots)

    @property
    def winograd(self) -> bool:
        """3x3, stride 1 or 2 (the same on both axes), undilated, one group: Winograd can
        replace im2col."""
        return (self.size == 3 and self.stride_x == self.stride_y and self.stride_x in (1, 2)
                and self.dilation == 1 and self.groups == 1)  # fmt: skip

    def _winograd_kernels(self, tile: int):
        """(input tile side, input and output transforms) of F(tile x tile, 3x3) at this
        layer's stride."""
        if self.stride_x == 2:
            if tile == 4:
                return 5, kernels.winograd_s2f4_input, kernels.winograd_s2f4_output
            return 5, kernels.winograd_s2_input, kernels.winograd_s2_output
        if tile == 4:
            return 6, kernels.winograd4_input, kernels.winograd4_output
        return 4, kernels.winograd_input, kernels.winograd_output

    def _winograd_depth(self, tile: int) -> int:
        """How deep the Winograd GEMMs are: the channels, or at stride 2 with 4x4 tiles the
        input's four phases of each."""
        return 4 * self.c if self.stride_x == 2 and tile == 4 else self.c

    def winograd_tile(self, out: Shape) -> int:
        """Output tile m of Winograd F(m x m, 3x3) at this layer's stride for this output size,
        or 0 for im2col.

        Products per output: F(4x4) 2.25, F(2x2) 4, im2col 9; but F(4x4)'s transforms cost
        more per channel, its U is 4x the weights (F(2x2)'s 1.8x), and a map that is not a
        multiple of 4 wastes more of its tiles. Measured per layer with the packed GEMM
        (gemm.py), 2 threads, filters = channels, one layer at a time: F(4x4) pays on maps of
        >= 36 4x4 tiles from 16 channels; on 16-35 tiles where its tiles overhang the map no
        more than F(2x2)'s (16x16, 19x19, 20x20), and on the others from 128 channels (13x13,
        512 channels: 2.8 against F(2x2)'s 3.9 ms; yolov3-tiny's 13x13 512->1024 layer 7.2 ->
        4.9 ms, with 75 MB of U); F(2x2) on the smaller maps from 64 channels (at 12x12 and
        below F(4x4)'s 3 tiles a side waste a third; 9x9 and 10x10, 512 channels: 2.4 against
        F(4x4)'s 3.2 ms and im2col's 3.1-3.6).

        At stride 2, F(2x2) makes 6.25 products per output where im2col makes 9, but its GEMMs
        are c deep instead of 9c, and U is 25/9 of the weights. It pays from 128 channels on
        outputs of >= 16 2x2 tiles (7x7: 512 channels 3.4 against 4.4 ms), from 64 on >= 25,
        from 32 on >= 64 and from 16 on >= 2500 (yolov4-tiny at 416: 3.45 vs 3.56 ms); on 9
        tiles (6x6) im2col wins. F(4x4, 2x2) over the input's four phases makes as many
        products in GEMMs 4c deep, with a quarter of the transformed outputs, but U is 100/9 of
        the weights: from 16 to 64 channels on outputs of >= 61 a side (2 threads, same process,
        alternating: yolov4-csp at 512, 32 -> 64 channels to 256x256, 20.1 -> 17.6 ms, 64 -> 128
        to 128x128 16.0 -> 15.2; yolov4-tiny, 32 -> 64 to 104x104, 3.03 -> 2.90). One core, a
        52x52 output (13 tiles a side: narrow GEMMs) ran 17% slower, 256 channels (U 52 MB
        for 512 filters) 25% slower.

        On a 1x1 output map (a small input's deepest level) im2col: one F(2x2) tile reads 16/9
        of the weights for one output (2 threads, 512 channels: 0.56 against 0.99 ms; 1024:
        2.16 against 3.93); from 2x2 maps F(2x2) wins (2x2, 512: 1.16 against 1.39 ms).

        Where the products go through BLAS instead (gemm.PACKED false), the rules measured with
        it apply: no F(4x4) on 13x13-like maps (7-19% slower than F(2x2) there), and stride 2
        from 64 channels on >= 64 tiles or from 16 on >= 2500."""
        if not (self.winograd and self.use_winograd):
            return 0
        if out[1] == 1 and out[2] == 1:  # a 1x1 map: one tile, 16/9 of the weights read for it
            return 0
        c = self.c
        if self.stride_x == 2:
            tiles = -(-out[1] // 2) * -(-out[2] // 2)
            if gemm.PACKED and 16 <= c <= 64 and min(out[1], out[2]) >= 61:
                return 4  # 4x4 tiles over the input's phases: >= 16 of them a side
            if gemm.PACKED:
                fits = ((c >= 128 and tiles >= 16) or (c >= 64 and tiles >= 25)
                        or (c >= 32 and tiles >= 64) or (c >= 16 and tiles >= 2500))  # fmt: skip
            else:
                fits = c >= 16 and tiles >= 64 and (c >= 64 or tiles >= 2500)
            return 2 if fits else 0
        tiles4 = -(-out[1] // 4) * -(-out[2] // 4)
        # 16-35 4x4 tiles that compute no more outputs than F(2x2)'s would (the map's sides
        # 4k or 4k-1: 15, 16, 19, 20)
        snug = tiles4 >= 16 and 4 * tiles4 == -(-out[1] // 2) * -(-out[2] // 2)
        if c >= 16 and (tiles4 >= 36 or snug) or gemm.PACKED and c >= 128 and tiles4 >= 16:
            return 4
        if c >= 64:
            return 2
        return 0

    def winograd_weights(self, tile: int) -> np.ndarray:
        """U = G g G^T of every (filter, channel) 3x3 kernel g, in gemm.gemm_tiles' layout
        (gemm.empty_weights); made once per tile size (summed in float64) and again when new
        weights are loaded."""
        made = getattr(self, "_winograd_u", None)
        if made is not None and tile in made:
            return made[tile]
        with _MAKING_U:  # images of a batch on several threads: made once
            return self._make_winograd_weights(tile)

    def _make_winograd_weights(self, tile: int) -> np.ndarray:
        made = getattr(self, "_winograd_u", None)
        if made is None:
            made = self._winograd_u = {}
        if tile not in made:
            n, c, mr = self.filters, self.c, gemm.MR
            if self.stride_x == 2 and tile == 4:
                u = gemm.empty_weights(25, n, 4 * c)
                w = self.weights.reshape(n, c, 3, 3)
                rows_of = self.phase_rows()[0]
                at = (np.arange(c)[None, :, None] * rows_of[:, None, :, 0]
                      + rows_of[:, None, :, 1]).reshape(25, 4 * c)  # row of phase channel 4ch+p
                for f0 in range(0, n, mr):
                    part = _phase_weights(w[f0 : f0 + mr], self.padding)
                    rows = np.empty_like(part)
                    for e in range(25):
                        rows[e][:, at[e]] = part[e]
                    gemm.store_filters(u, f0, rows)
            else:
                g = self.weights.reshape(-1, 9)
                side = self._winograd_kernels(tile)[0]
                u = gemm.empty_weights(side * side, n, c)

                def blocks(b0: int, b1: int) -> None:
                    """U of filters mr*b0.. (mr at a time: no second copy of U in memory)."""
                    for b in range(b0, b1):
                        f0, f1 = b * mr, min(n, b * mr + mr)
                        part = winograd_weights(g[f0 * c : f1 * c], side)
                        gemm.store_filters(u, f0, part.reshape(side * side, -1, c))

                in_steps(-(-n // mr), blocks, 1)  # one step per thread: a cold start's forward
            made[tile] = u
            self._free_weights()
        return made[tile]

    def phase_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Stride-2 F(4x4, 2x2)'s (rows_of, depths) for this layer (_phase_rows)."""
        made = getattr(self, "_phase_rows", None)
        if made is None:
            made = self._phase_rows = _phase_rows(self.padding, self.c)
        return made

    STREAMED = ("weights",)

    def drop_streamed(self) -> None:
        self._free_weights()

    def wants_streamed(self) -> bool:  # the forms the weights setter forgets
        return not (self._winograd_u or self._packed is not None or self._taps is not None)

    def _free_weights(self) -> None:
        """Weights once: a form made from them (Winograd's U, packed weights) replaces them in
        memory; `weights` reads them again from the file if something asks."""
        if self._weights_at is not None:
            self._weights = None

    def _made_once(self, name: str, make):
        """getattr(self, name), made by make() on first use (once, whichever thread asks), in
        place of the weights."""
        made = getattr(self, name, None)
        if made is None:
            with _MAKING_U:
                made = getattr(self, name, None)
                if made is None:
                    made = make()
                    setattr(self, name, made)
                    self._free_weights()
        return made

    def flops(self, prev: Shape, out: Shape) -> float:
        # convolutional_layer.c: bflops = 2 * n * size*size*c/groups * out_h*out_w
        return 2.0 * self.filters * self.size * self.size * self.c / self.groups * out[1] * out[2]

    def few_channels_direct(self, out: Shape) -> bool:
        """A 3x3 convolution of 1-4 channels (a first layer) runs without im2col
        (kernels.conv3x3_rows): one group, undilated, stride 1 or 2, >= kernels.CONV_COLS (24,
        32 with AVX-512) output columns,
        where the packed GEMM's kernels are in use (and not in a network that keeps to im2col,
        Network.winograd = False). 2 threads, same process, alternating: yolov3-tiny's
        3 -> 16 layer at 416 2.86 -> 1.55 ms (the next two layers then took 0.2 ms longer; the
        forward 5.5% less), yolov4-tiny's 3 -> 32 at stride 2 1.57 -> 1.06, yolov4-csp's at
        512 8.8 -> 6.6."""
        return (self.size == 3 and self.groups == 1 and self.dilation == 1 and self.c <= 4
                and self.stride_x == self.stride_y and self.stride_x in (1, 2)
                and out[2] >= kernels.CONV_COLS and gemm.PACKED and JIT_JOBS
                and self.use_winograd)  # fmt: skip

    def tap_weights(self) -> np.ndarray:
        """The weights as kernels.conv3x3_rows reads them (ceil(n / 4), 9c, 4), zero past the
        last filter; made once, in place of the weights."""

        def make() -> np.ndarray:
            w, fr = self.weights.reshape(self.filters, -1), kernels.CONV_FR
            taps = np.zeros((-(-self.filters // fr) * fr, w.shape[1]), np.float32)
            taps[: self.filters] = w
            return np.ascontiguousarray(taps.reshape(-1, fr, w.shape[1]).transpose(0, 2, 1))

        return self._made_once("_taps", make)

    def _few_channels_jit(self, x_shape, out_shape, pool):
        """kernels.conv3x3_rows in steps of output rows, a pool job run whole in the JIT: the
        forward for these shapes (see _jit_run)."""
        c, h, w = x_shape[1:]
        out_h = out_shape[2]
        stride, pad, job = self.stride_x, self.padding, kernels.conv3x3_job
        steps = min(out_h, 4 * pool.size)  # a share for a worker that starts late
        rows = -(-out_h // steps)
        shape = (pool.size, *kernels.conv3x3_plane_shape(c, w, stride, pad, rows))
        count, fact = -(-out_h // rows), _c_calls("bias_activate")[0]

        def run(x, out, ws):
            wp, planes = self.tap_weights(), _job_buffer("planes", shape)
            taps = _job_buffer("taps", (pool.size, 9 * c), np.int64)
            act = _job_scratch(pool.size, 0)[0]
            for b in range(x.shape[0]):
                pool.run_jit(job, count, fact, x[b], wp, self.biases, self.activation, stride,
                             pad, rows, out[b], planes, taps, act)  # fmt: skip
            return out

        return run

    def _jit_run(self, x_shape: tuple, out_shape: tuple):
        """run(x, out, ws), this layer's forward for these shapes on this thread's pool where it
        is compiled pool jobs (Winograd with the packed GEMM, 1x1, few channels), else None:
        worked out once per shapes, pool and settings (a forward's Python per such layer took
        ~13 us, ~0.3 ms of yolov4-tiny's). The weights, biases and scratch are read at each
        call: loading weights needs no reset here."""
        pool, tile = threads.pool(), self.winograd_tile(out_shape[1:])
        key = (x_shape, out_shape, tile, pool, JIT_JOBS, gemm.PACKED, self.use_winograd)
        made = self.__dict__.setdefault("_runs", {})
        run = made.get(key, _UNKNOWN)
        if run is _UNKNOWN:
            if len(made) >= 16:  # pools and sizes come and go
                made.clear()
            run = made[key] = self._make_jit_run(x_shape, out_shape, tile, pool)
        return run

    def _make_jit_run(self, x_shape, out_shape, tile, pool):
        out = out_shape[1:]
        if tile:
            if not (JIT_JOBS and self.winograd_weights(tile).ndim == 4):  # the packed GEMM's U
                return None
            steps, per_slot = self._winograd_steps(out, tile, pool.size)
            return self._winograd_jit(x_shape, out_shape, tile, steps, per_slot, pool)
        if self.few_channels_direct(out):
            return self._few_channels_jit(x_shape, out_shape, pool)
        if self.depthwise or not (self.direct and self.groups == 1 and gemm.PACKED and JIT_JOBS
                                  and self.use_winograd):  # fmt: skip
            return None
        rows, steps, small = self._im2col_steps(x_shape, out_shape, pool.size)
        return self._direct_jit(x_shape, out_shape, rows * out[2], steps >= pool.size or small,
                                pool)  # fmt: skip

    def _im2col_steps(self, x_shape, out_shape, slots: int) -> tuple[int, int, bool]:
        """(output rows per step, steps, whether the layer is small) of an im2col or 1x1 forward."""
        c = x_shape[1]
        n, out_h, out_w = out_shape[1:]
        k = c // self.groups * self.size * self.size  # im2col rows per group
        rows = _rows_per_step(out_h, c * self.size * self.size * out_w, slots)
        if self.direct and n < SPLIT_FILTERS_FROM and out_h * out_w >= 2 * slots * STEP_COLUMNS:
            rows = min(rows, -(-out_h // (2 * slots)))  # column steps: full-height GEMMs
        small = n < 32 * slots or n * k * out_h * out_w < SMALL_MACS
        return rows, -(-out_h // rows), small

    def forward(self, x, outputs, out, ws):
        run = self._jit_run(x.shape, out.shape)
        if run is not None:
            return run(x, out, ws)
        tile = self.winograd_tile(out.shape[1:])
        if tile:
            return self._forward_winograd(x, out, ws, tile)
        if self.depthwise:
            return self._forward_depthwise(x, out)
        c, h, w = x.shape[1:]
        n, out_h, out_w = out.shape[1:]
        g, size, act = self.groups, self.size, self.activation
        k = c // g * size * size  # im2col rows per group
        pool = threads.pool()
        rows, steps, small = self._im2col_steps(x.shape, out.shape, pool.size)
        per_slot = c * size * size * rows * out_w  # workspace floats of one thread
        bias_activate = self._bias_activate()
        for b in range(x.shape[0]):
            src = x[b].reshape(c, h * w)
            y = out[b].reshape(n, out_h * out_w)  # (n, out_h*out_w)

            def by_rows(i, slot):
                """Output rows i*rows.. : im2col, GEMM, bias + activation on one core."""
                oy0, oy1 = i * rows, min(out_h, (i + 1) * rows)
                lo, hi = oy0 * out_w, oy1 * out_w  # this step's GEMM columns
                if self.direct:
                    cols = src[:, lo:hi]  # the input already is the im2col matrix
                else:
                    cols = ws[slot * per_slot : slot * per_slot + g * k * (hi - lo)]
                    cols = cols.reshape(g * k, hi - lo)
                    kernels.im2col_rows(
                        src, h, w, size, self.stride_y, self.stride_x, self.padding,
                        self.dilation, oy0, oy1, out_w, cols,
                    )  # fmt: skip
                for j in range(g):
                    np.matmul(
                        self.weights[j], cols[j * k : (j + 1) * k],
                        out=y[j * (n // g) : (j + 1) * (n // g), lo:hi],
                    )  # fmt: skip
                bias_activate(y, self.biases, act, lo, hi)

            if steps >= pool.size or g > 1 or small:
                pool.run(by_rows, steps)
                continue
            # small maps (the 13x13 and 26x26 heads): one im2col, then split the filters
            if self.direct:
                cols = src
            else:
                cols = ws[: k * out_h * out_w].reshape(k, out_h * out_w)
                kernels.im2col_rows(
                    src, h, w, size, self.stride_y, self.stride_x, self.padding,
                    self.dilation, 0, out_h, out_w, cols,
                )  # fmt: skip
            # one part per thread: two each (a share for a worker that wakes late) made the GEMMs
            # half as tall, which cost more (yolov4-tiny 37.1 -> 35.5 ms, csp 378 -> 371 ms)
            fstep = -(-n // pool.size)

            def by_filters(i, slot):
                f0, f1 = i * fstep, min(n, (i + 1) * fstep)
                np.matmul(self.weights[0, f0:f1], cols, out=y[f0:f1])
                bias_activate(y[f0:f1], self.biases[f0:f1], act, 0, out_h * out_w)

            pool.run(by_filters, -(-n // fstep))
        return out

    def _bias_activate(self):
        """bias_activate(y, bias, code, lo, hi) for the BLAS steps: kernels.bias_activate, or
        where this layer's network runs JIT jobs, the C form they call (kernels.c_address):
        one compiled copy where there would be two (2-3 s of a first multi-image run)."""
        if not (gemm.PACKED and JIT_JOBS and self.use_winograd):
            return lambda y, bias, code, lo, hi: kernels.bias_activate(y, bias, code, lo, hi,
                                                                       *act_scratch())  # fmt: skip
        call = kernels.c_function("bias_activate")

        def c_form(y, bias, code, lo, hi):  # y: C-contiguous rows
            call(y.ctypes.data, y.shape[0], y.shape[1], bias.ctypes.data, code, lo, hi,
                 act_scratch()[0].ctypes.data)  # fmt: skip

        return c_form

    def packed_weights(self) -> np.ndarray:
        """A 1x1 layer's weights packed for gemm_packed (made once, in place of the weights)."""
        return self._made_once("_packed", lambda: gemm.pack(self.weights[0]))

    def _direct_jit(self, x_shape, out_shape, cols, by_columns, pool):
        """A 1x1 stride-1 convolution as a pool job run whole in the JIT (kernels.conv1x1_job):
        steps of `cols` output columns, or the filters split over the threads (see _jit_run)."""
        n, hw, c = out_shape[1], out_shape[2] * out_shape[3], x_shape[1]
        chunk, job = kernels.conv1x1_chunk(c), kernels.conv1x1_job
        fstep = 0 if by_columns else -(-n // pool.size // gemm.MR) * gemm.MR
        steps = -(-hw // cols) if by_columns else -(-n // fstep)
        calls = _c_calls("gemm_tiles", "bias_activate")

        def run(x, out, ws):
            ap = self.packed_weights()
            act, scratch = _job_scratch(pool.size, c)
            copies = _job_buffer("copies", (pool.size, c * (chunk + 16)))
            for b in range(x.shape[0]):
                pool.run_jit(job, steps, calls, ap, x[b].reshape(c, hw), out[b].reshape(n, hw),
                             cols, fstep, chunk, self.biases, self.activation, act, scratch,
                             copies)  # fmt: skip
            return out

        return run

    def _forward_depthwise(self, x, out):
        """kernels.depthwise, then bias + activation, in steps of output channels."""
        n, out_h, out_w = out.shape[1:]
        w = self.weights.reshape(n, self.size * self.size)
        mult, act = n // self.groups, self.activation
        for b in range(x.shape[0]):
            y = out[b].reshape(n, out_h * out_w)

            def filters(f0, f1):
                kernels.depthwise(x[b], w, mult, self.size, self.stride_y, self.stride_x,
                                  self.padding, self.dilation, f0, f1, out[b])  # fmt: skip
                kernels.bias_activate(y[f0:f1], self.biases[f0:f1], act, 0, out_h * out_w,
                                      *act_scratch())

            in_steps(n, filters)
        return out

    def _winograd_steps(self, out: Shape, tile: int, slots: int) -> tuple[np.ndarray | None, int]:
        """(steps, workspace floats per thread) of a Winograd forward on `slots` threads: steps
        of tile rows and filters (_tile_steps), or None on small maps, where the whole map's
        input transform comes first, split by channels, then the filters are split (two pool
        jobs instead of one). Made once per output size, tile and thread count (~13 us: a
        forward asks for it every time)."""
        key = (tuple(out), tile, slots)
        known = self.__dict__.setdefault("_steps_made", {})
        if key not in known:
            known[key] = self._make_winograd_steps(out, tile, slots)
        return known[key]

    def _make_winograd_steps(self, out: Shape, tile: int, slots: int):
        th, tw = -(-out[1] // tile), -(-out[2] // tile)
        side, depth = self._winograd_kernels(tile)[0], self._winograd_depth(tile)
        per_row = side * side * (depth + out[0]) * tw  # transformed input, GEMM output
        rows = _tile_rows_per_step(th, tw, per_row, slots)
        if -(-th // rows) < slots and out[0] >= 32 * slots:
            fstep = _filter_step(out[0], slots)  # V, then each filter step's M
            ld, vr, mr = kernels.step_layout(th * tw, tw, depth, fstep)
            return None, side * side * (vr + mr * -(-out[0] // fstep)) * ld
        steps = _tile_steps(th, tw, out[0], rows, slots)
        per_slot = 0
        for ty0, ty1, f0, f1 in steps.tolist():
            ld, vr, mr = kernels.step_layout((ty1 - ty0) * tw, tw, depth, f1 - f0)
            per_slot = max(per_slot, side * side * (vr + mr) * ld)
        return steps, -(-per_slot // 16) * 16  # each thread's part 64-byte aligned

    def jit_jobs(self, out: Shape) -> bool:
        """Whether this layer's steps at this output size run as compiled pool jobs (the packed
        GEMM's Winograd and 1x1 layers: _winograd_jit, _direct_jit), not as Python steps."""
        if not (gemm.PACKED and JIT_JOBS and self.use_winograd):
            return False
        return bool(self.winograd_tile(out)) or (self.direct and self.groups == 1)

    def pool_jobs(self, out: Shape) -> int:
        """How many jobs one image's forward hands the pool (network._runs_alone weighs them)."""
        tile = self.winograd_tile(out)
        if tile and self._winograd_steps(out, tile, threads.pool().size)[0] is None:
            return 1 if self.jit_jobs(out) else 2  # as Python steps: the transform, the filters
        return 1

    def _forward_winograd(self, x, out, ws, tile):
        """Winograd F(tile x tile, 3x3), tile rows (or, on small maps, filters) in steps over the
        pool: input transform, (tile+2)^2 GEMMs U[i] @ V[i], output transform, bias +
        activation (kernels.winograd*_input/output)."""
        c, n = self._winograd_depth(tile), out.shape[1]  # c: the GEMMs' depth
        channels = x.shape[1]
        out_h, out_w = out.shape[2:]
        th, tw = -(-out_h // tile), -(-out_w // tile)
        side, transform_input, transform_output = self._winograd_kernels(tile)
        a = side * side  # transformed values per tile
        u, pad, act = self.winograd_weights(tile), self.padding, self.activation
        pool = threads.pool()
        steps, per_slot = self._winograd_steps(out.shape[1:], tile, pool.size)
        depths = None
        if self.stride_x == 2 and tile == 4:  # the phase channels' rows, each product's depth
            rows_of, depths = self.phase_rows()
            s2f4_input = transform_input

            def transform_input(*args):
                s2f4_input(*args, rows_of)

        for b in range(x.shape[0]):
            y = out[b].reshape(n, out_h * out_w)

            def by_rows(i, slot):
                ty0, ty1, f0, f1 = (int(v) for v in steps[i])
                t = (ty1 - ty0) * tw
                ld, vr, mr = kernels.step_layout(t, tw, c, f1 - f0)
                base = slot * per_slot
                v = ws[base : base + a * vr * ld].reshape(a, vr, ld)
                m = ws[base + a * vr * ld : base + a * (vr + mr) * ld].reshape(a, mr, ld)
                transform_input(x[b], pad, ty0, ty1, tw, 0, channels, v)
                gemm.gemm_tiles(gemm.filters(u, f0, f1), v[:, :c, :t], m[:, : f1 - f0, :t],
                                gemm_scratch(c), depths)  # fmt: skip
                transform_output(m, ty0, ty1, tw, f0, f1, out[b])
                kernels.bias_activate(y[f0:f1], self.biases[f0:f1], act, tile * ty0 * out_w,
                                      min(out_h, tile * ty1) * out_w, *act_scratch())  # fmt: skip

            if steps is not None:
                pool.run(by_rows, len(steps))
                continue
            # small maps: the whole map's input transform split by channels, then the filters
            t = th * tw
            fstep = _filter_step(n, pool.size)
            ld, vr, mr = kernels.step_layout(t, tw, c, fstep)
            v = ws[: a * vr * ld].reshape(a, vr, ld)
            in_steps(channels, lambda c0, c1: transform_input(x[b], pad, 0, th, tw, c0, c1, v), 1)

            def by_filters(i, slot):
                f0, f1 = i * fstep, min(n, (i + 1) * fstep)
                start = a * (vr + i * mr) * ld
                m = ws[start : start + a * mr * ld].reshape(a, mr, ld)
                gemm.gemm_tiles(gemm.filters(u, f0, f1), v[:, :c, :t], m[:, : f1 - f0, :t],
                                gemm_scratch(c), depths)  # fmt: skip
                transform_output(m, 0, th, tw, f0, f1, out[b])
                kernels.bias_activate(y[f0:f1], self.biases[f0:f1], act, 0, out_h * out_w,
                                      *act_scratch())

            pool.run(by_filters, -(-n // fstep))
        return out

    def _winograd_jit(self, x_shape, out_shape, tile, steps, per_slot, pool):
        """_forward_winograd's steps as pool jobs that run whole in the JIT (kernels.py, "pool
        jobs"): the same kernels on the same steps, so the same numbers (see _jit_run)."""
        c, n, depth = x_shape[1], out_shape[1], self._winograd_depth(tile)
        th, tw = -(-out_shape[2] // tile), -(-out_shape[3] // tile)
        a = self._winograd_kernels(tile)[0] ** 2
        kind = ("_s2" if tile == 2 else "_s2f4") if self.stride_x == 2 else str(tile)
        calls = _c_calls("in" + kind, "out" + kind, "gemm_tiles", "bias_activate")
        pad, job = self.padding, kernels.winograd_job
        table = _NO_STEPS if steps is None else steps
        rows_of, depths = self.phase_rows() if kind == "_s2f4" else (_NO_PHASES, _NO_DEPTHS)
        per = -(-c // pool.size)  # small maps: channels per input-transform step,
        fstep = _filter_step(n, pool.size)  # and filters per product step

        def run(x, out, ws):
            u = self.winograd_weights(tile)
            act, scratch = _job_scratch(pool.size, depth)
            for b in range(x.shape[0]):
                common = (a, depth, tile, x[b], pad, th, tw)
                tail = (out[b], self.biases, self.activation, act, scratch, table, rows_of,
                        depths)  # fmt: skip
                if steps is not None:
                    pool.run_jit(job, len(steps), 0, calls, *common, 0, u, ws, per_slot, *tail)
                    continue
                pool.run_jit(job, -(-c // per) + -(-n // fstep), 1, calls, *common, fstep, u, ws,
                             per, *tail)  # fmt: skip
            return out

        return run


_UNKNOWN = object()  # Convolutional._jit_run's "not worked out yet"
_NO_STEPS = np.zeros((0, 4), np.int64)  # winograd_job's step table in mode 1
_NO_PHASES = np.zeros((25, 4, 2), np.int64)  # and its phase table and depths, but at stride-2
_NO_DEPTHS = np.zeros(0, np.int64)  # F(4x4, 2x2)


@dataclass
class MaxPool(Layer):
    """[maxpool]: padding is the total padding, origin -padding/2 (maxpool_layer.c)."""

    KIND = "max"
    section: Section
    size: int
    stride_x: int
    stride_y: int
    padding: int
    inputs: list[int] = field(default_factory=list)  # [k]: pool layer k's output, see `window`
    window: int = 0  # with inputs: the size that pools layer k's output into this one's

    IGNORED = frozenset({"maxpool_zero_nonmax"})  # read by parser.c, used only on the GPU

    @property
    def centred(self) -> bool:
        """Stride 1 and an odd window centred on each output (darknet's default padding)."""
        return (self.stride_x == self.stride_y == 1 and self.size % 2 == 1
                and self.padding == self.size - 1)  # fmt: skip

    def even_pairs(self, prev: Shape) -> bool:
        """2x2, stride 2, origin 0 on a map of even sides: kernels.maxpool_2x2_even."""
        return (not self.inputs and self.size == 2 and self.stride_x == self.stride_y == 2
                and self.padding < 2 and prev[1] % 2 == 0 and prev[2] % 2 == 0)  # fmt: skip

    def pool_again(self, k: int, size_k: int) -> None:
        """Compute this centred pool as layer k's, a centred pool of size_k < size over the
        same input, pooled again with size - size_k + 1 (YOLOv5's SPPF in an SPP block: 9 =
        5 then 5). Exact: a window of windows covers this window, and either way the taps
        outside the image never win and NaN never does."""
        self.inputs, self.window = [k], self.size - size_k + 1

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> MaxPool:
        stride = s.get_int("stride", 1)
        stride_x = s.get_int("stride_x", stride)
        stride_y = s.get_int("stride_y", stride)
        size = s.get_int("size", stride)
        padding = s.get_int("padding", size - 1)  # parser.c: total padding, not per side
        maxpool_depth = s.get_int("maxpool_depth", 0)
        out_channels = s.get_int("out_channels", 1)
        antialiasing = s.get_int("antialiasing", 0)
        if size < 1:
            raise s.error("size", "must be >= 1")
        if stride_x < 1 or stride_y < 1:
            raise s.error("stride", "must be >= 1")
        if padding < 0:
            raise s.error("padding", "must be >= 0")
        if antialiasing not in (0, 1, 2):
            raise s.error("antialiasing", "expected 0, 1 (3x3 blur) or 2 (2x2 blur)")
        if maxpool_depth and out_channels < 1:
            raise s.error("out_channels", "must be >= 1")
        if maxpool_depth and antialiasing:
            # forward_maxpool_layer returns before the blur but the next layer gets its shape
            raise s.error("antialiasing", "darknet skips the blur with maxpool_depth=1")
        if not (maxpool_depth or antialiasing):
            return cls(s, size, stride_x, stride_y, padding)
        from .layers_more import MaxPoolExt

        host_stride = (1, 1) if antialiasing else (stride_x, stride_y)
        return MaxPoolExt(s, size, *host_stride, padding, maxpool_depth=maxpool_depth,
                          out_channels=out_channels, antialiasing=antialiasing,
                          blur_stride_x=stride_x, blur_stride_y=stride_y)  # fmt: skip

    def flops(self, prev: Shape, out: Shape) -> float:
        # maxpool_layer.c: bflops = size*size*c*out_h*out_w
        return float(self.size * self.size * prev[0] * out[1] * out[2])

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        c, h, w = prev
        out_h = (h + self.padding - self.size) // self.stride_y + 1
        out_w = (w + self.padding - self.size) // self.stride_x + 1
        if out_h < 1 or out_w < 1:
            raise self.error("size", f"window {self.size} does not fit a {h}x{w} input")
        return (c, out_h, out_w)

    use_jobs = True  # Network.winograd: False keeps to Python steps, compiling no job

    @staticmethod
    def jit_jobs() -> bool:
        """Whether the channels' steps run as one compiled pool job (kernels.maxpool_*job), not
        as Python steps, which on 2 threads ran slower than one thread (yolov4-tiny's
        104x104x128 pool: 0.32 against 0.26 ms). 2 threads, same process, alternating (120
        forwards each): that pool 0.29 -> 0.20 ms, its 52x52 and 26x26 ones 0.16 -> 0.13 and
        0.11 -> 0.09; yolov3-tiny's first two pools 0.51 -> 0.44 and 0.24 -> 0.18, its 13x13
        stride-1 one 0.18 -> 0.12; the forwards 1.1% and 2.0% faster."""
        return compiled_jobs()

    def forward(self, x, outputs, out, ws):
        size, pad = self.size, self.padding
        if self.inputs:  # pool_again
            x, size = outputs[self.inputs[0]], self.window
            pad = size - 1
        c, h, w = x.shape[1:]
        out_h, out_w = out.shape[2:]
        small = (self.stride_x == self.stride_y == 1 and size > 2
                 and out_h * w <= kernels.POOL_PLANE)  # fmt: skip
        even = not small and self.even_pairs(x.shape[1:])
        pool = _channel_pool(self)
        if pool and all(a.flags.c_contiguous for b in range(x.shape[0]) for a in (x[b], out[b])):
            for b in range(x.shape[0]):
                flat = x[b].reshape(c, h * w)
                if even:
                    scratch = np.empty((pool.size, kernels.pool_pairs(h, w)), np.float32)
                    _run_channels(pool, kernels.maxpool_2x2_job, c, flat, h, w,
                                  out[b].reshape(c, out_h * out_w), scratch)  # fmt: skip
                elif small:
                    scratch = np.empty((pool.size, 2 * out_h * w + out_w * out_h), np.float32)
                    _run_channels(pool, kernels.maxpool_small_job, c, flat, h, w, size, pad,
                                  out[b], scratch)  # fmt: skip
                else:
                    scratch = np.empty((pool.size, w), np.float32)  # a row
                    _run_channels(pool, kernels.maxpool_job, c, x[b], size, self.stride_y,
                                  self.stride_x, pad, out[b], scratch)  # fmt: skip
            return out
        if small:
            planes = 2 * out_h * w + out_w * out_h
            for b in range(x.shape[0]):
                flat = x[b].reshape(c, h * w)
                in_steps(c, lambda c0, c1: kernels.maxpool_small(
                    flat[c0:c1], h, w, size, pad, out[b, c0:c1], np.empty(planes, np.float32)),
                    2)  # fmt: skip
            return out
        pairs = kernels.pool_pairs(h, w) if even else 0
        for b in range(x.shape[0]):
            if even and out[b].flags.c_contiguous:  # (not: its reshape would be a copy)
                flat, done = x[b].reshape(c, h * w), out[b].reshape(c, out_h * out_w)
                in_steps(c, lambda c0, c1: kernels.maxpool_2x2_even(
                    flat[c0:c1], h, w, done[c0:c1], np.empty(pairs, np.float32)), 2)  # fmt: skip
                continue
            in_steps(c, lambda c0, c1: kernels.maxpool(
                x[b, c0:c1], size, self.stride_y, self.stride_x, pad, out[b, c0:c1],
                np.empty(w, np.float32)), 2)  # fmt: skip
        return out


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """a and b are the very same elements, where a and b are either that or disjoint (a
    route's piece and its place in the route's output, by the network's memory plan).
    np.may_share_memory compares bounds: 0.3 us, where reading both data pointers from
    __array_interface__ took 6.5 (0.4 ms of a yolov7-tiny forward's 60 routed pieces)."""
    return a.shape == b.shape and a.strides == b.strides and np.may_share_memory(a, b)


@dataclass
class Route(Layer):
    """[route]: concatenate layers' outputs; with groups, take slice group_id (route_layer.c)."""

    USES_PREV = False  # reads only the layers it names

    section: Section
    inputs: list[int]
    groups: int
    group_id: int

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Route:
        layers = [_layer_index(s, "layers", v, ctx) for v in s.get_ints("layers")]
        groups = s.get_int("groups", 1)
        group_id = s.get_int("group_id", 0)
        if groups < 1:
            raise s.error("groups", "must be >= 1")
        if not 0 <= group_id < groups:
            raise s.error("group_id", f"must be in 0..{groups - 1}")
        return cls(s, layers, groups, group_id)

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        first = shapes[self.inputs[0]]
        c = 0
        for i in self.inputs:
            ci, hi, wi = shapes[i]
            if (hi, wi) != first[1:]:
                raise self.error(
                    "layers",
                    f"layer {i} is {hi}x{wi} but layer {self.inputs[0]} is "
                    f"{first[1]}x{first[2]}; routed layers must have the same size",
                )
            if ci % self.groups:
                raise self.error("groups", f"layer {i} has {ci} channels, not divisible")
            c += ci // self.groups
        return (c, first[1], first[2])

    def _pieces(self, outputs, out):
        """(input's piece, its place in out) for each input."""
        start = 0
        for i in self.inputs:
            src = outputs[i]
            part = src.shape[1] // self.groups
            lo = part * self.group_id
            yield src[:, lo : lo + part], out[:, start : start + part]
            start += part

    def in_place(self, outputs, out) -> bool:
        """Whether every piece is already in its place: forward would copy nothing."""
        return all(_same_memory(piece, dst) for piece, dst in self._pieces(outputs, out))

    def forward(self, x, outputs, out, ws):
        for piece, dst in self._pieces(outputs, out):
            if not _same_memory(piece, dst):  # else the network's plan had it written in place
                dst[...] = piece
        return out


@dataclass
class Shortcut(Layer):
    """[shortcut]: previous output plus other layers' (weighted) outputs (shortcut_layer.c)."""

    KIND = "shortcut"
    section: Section
    inputs: list[int]
    activation: int
    weights_type: str
    normalization: str
    c: int = 0
    weights: np.ndarray | None = None

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Shortcut:
        layers = [_layer_index(s, "from", v, ctx) for v in s.get_ints("from")]
        act = _activation(s, "linear")
        if s.get_str("activation") in ("hard_mish", "relu6"):
            # forward_shortcut_layer special-cases only swish and mish; activate() lacks these
            raise s.error("activation", "darknet's [shortcut] outputs 0 with this activation")
        wt = s.get_str("weights_type", "none")
        if wt == "per_layer":
            wt = "per_feature"  # parser.c treats them alike
        if wt not in ("none", "per_feature", "per_channel"):
            raise s.error("weights_type", "expected none, per_feature, per_layer or per_channel")
        norm = s.get_str("weights_normalization", "none")
        if norm == "avg_relu":
            norm = "relu"
        if norm not in ("none", "relu", "softmax"):
            raise s.error("weights_normalization", "expected none, relu, avg_relu or softmax")
        return cls(s, layers, act, wt, norm, ctx.prev[0])

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        # parse_shortcut only prints "Downsample here" for other sizes: shortcut_multilayer_cpu
        # then adds over the flat index where the other layer has values (see forward)
        return prev

    def flops(self, prev: Shape, out: Shape) -> float:
        # shortcut_layer.c: out_w*out_h*out_c*n (n = number of from= layers), x2 with weights
        n = out[0] * out[1] * out[2] * len(self.inputs)
        return float(2 * n if self.weights_type != "none" else n)

    def params(self) -> list[tuple[str, int]]:
        n = len(self.inputs) + 1
        if self.weights_type == "per_feature":
            return [("weights", n)]
        if self.weights_type == "per_channel":
            return [("weights", n * self.c)]
        return []

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        if self.weights_type == "none":
            return
        n = len(self.inputs) + 1
        w = arrays["weights"].reshape(n, -1).astype(np.float32)  # (n, 1) or (n, c)
        # network.c fuse_conv_batchnorm (run by detector test and classifier predict) normalises
        # the weights once; its "relu" is lrelu: max(w, .001), not the forward pass's relu
        if self.normalization == "relu":
            w = np.where(w > np.float32(0.001), w, np.float32(0.001))
            w = w / (np.float32(0.0001) + w.sum(0))
        elif self.normalization == "softmax":
            e = np.exp(w - w.max(0))
            w = e / (np.float32(0.0001) + e.sum(0))
        self.weights = np.ascontiguousarray(w, dtype=np.float32)

    def forward(self, x, outputs, out, ws):
        # blas.c shortcut_multilayer_cpu: over the flat index, each input adds where it exists,
        # i.e. the first min(c, c_from) channels when channel counts differ.
        c = out.shape[1]
        pool = _channel_pool(self) if self.jit_job() else None
        if pool:
            src = outputs[self.inputs[0]]
            parts = [a for b in range(x.shape[0]) for a in (x[b], src[b, :c], out[b])]
            if src.shape[2:] == out.shape[2:] and src.shape[1] >= c and all(
                    a.flags.c_contiguous for a in parts):  # fmt: skip
                hw = out.shape[2] * out.shape[3]
                for b in range(x.shape[0]):
                    _run_channels(pool, kernels.add_job, c, x[b].reshape(c, hw),
                                  src[b, :c].reshape(c, hw), out[b].reshape(c, hw))  # fmt: skip
                return out
        if any(outputs[i].shape[2:] != out.shape[2:] for i in self.inputs):
            self._sum(x, outputs, out, 0, c)  # another w/h: its flat index crosses channels
        else:
            in_steps(c, lambda c0, c1: self._sum(x, outputs, out, c0, c1), 1)
        return out

    use_jobs = True  # Network.winograd: False keeps to Python steps, compiling no job

    def jit_job(self) -> bool:
        """Whether the sum is one compiled pool job (kernels.add_job), where it is x plus one
        input of the same shape, unweighted, linear (yolov3's, yolov4's and the Scaled-YOLOv4
        models' shortcuts): as Python steps on 2 threads it ran slower than on one (yolov4-csp
        at 512, the shortcuts' sum 5.3 ms on one thread, 6.3 on two)."""
        return (compiled_jobs() and self.use_jobs and self.weights is None
                and len(self.inputs) == 1 and self.activation == kernels.LINEAR)  # fmt: skip

    def _sum(self, x, outputs, out, c0, c1) -> None:
        """Channels c0..c1 of the sum and its activation: one pass over them while they are in
        cache, in steps over the pool (memory-bound: yolov4-csp's 256x256x64 shortcut 2.8 ->
        1.6 ms in a forward on 2 threads). An input of another width or height is added over
        the flat index (_add_flat), so forward passes all channels then."""
        w = self.weights

        def weight(k: int) -> np.ndarray:  # (1,) per_feature or (c,) per_channel -> broadcast
            wk = w[k] if w[k].size == 1 else w[k][c0:c1]
            return wk.reshape(1, -1, 1, 1)

        o = out[:, c0:c1]
        srcs = [(k, outputs[i]) for k, i in enumerate(self.inputs, start=1)]
        first = srcs[0][1] if srcs else out[:, :0]  # (no input: never the one-pass add)
        if w is None and first.shape[2:] == out.shape[2:] and first.shape[1] >= c1:
            np.add(x[:, c0:c1], first[:, c0:c1], out=o)  # x + the first input, one pass
            srcs = srcs[1:]
        elif w is None:
            o[...] = x[:, c0:c1]
        else:
            np.multiply(x[:, c0:c1], weight(0), out=o)
        for k, src in srcs:
            if src.shape[2:] != out.shape[2:]:
                self._add_flat(out, src, None if w is None else w[k])
                continue
            m = min(c1, src.shape[1]) - c0  # this input's channels in c0..c1
            if m <= 0:
                continue
            if w is None:
                o[:, :m] += src[:, c0 : c0 + m]
            else:
                o[:, :m] += src[:, c0 : c0 + m] * weight(k)[:, :m]
        if self.activation != kernels.LINEAR:
            for b in range(o.shape[0]):  # one image's channels are contiguous
                kernels.activate(o[b].reshape(c1 - c0, -1), self.activation, *act_scratch())

    @staticmethod
    def _add_flat(out: np.ndarray, src: np.ndarray, w: np.ndarray | None) -> None:
        """A from-layer of another w/h: out.flat[j] += src.flat[j] * weight(channel of j) for
        j < min of the two sizes, per image, as shortcut_multilayer_cpu indexes it."""
        n = out.shape[0]
        o, a = out.reshape(n, -1), src.reshape(n, -1)
        m = min(o.shape[1], a.shape[1])
        if w is None:
            o[:, :m] += a[:, :m]
        elif w.size == 1:  # per_feature
            o[:, :m] += a[:, :m] * w[0]
        else:  # per_channel: the weight of the output channel of each flat index
            o[:, :m] += a[:, :m] * np.repeat(w, out.shape[2] * out.shape[3])[:m]


@dataclass
class Upsample(Layer):
    """[upsample]: nearest-neighbour by stride; negative stride sums down (upsample_layer.c)."""

    KIND = "upsample"
    use_jobs = True  # Network.winograd: False keeps to one call, compiling no job
    section: Section
    stride: int
    scale: float
    inputs: list[int] = field(default_factory=list)

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Upsample:
        stride = s.get_int("stride", 2)  # parser.c parse_upsample default (OpenCV: 1)
        scale = s.get_float("scale", 1.0)
        if stride == 0:
            raise s.error("stride", "must not be 0")
        return cls(s, stride, scale)

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        c, h, w = prev
        if self.stride > 0:
            return (c, h * self.stride, w * self.stride)
        s = -self.stride
        if h // s < 1 or w // s < 1:
            raise self.error("stride", f"{h}x{w} input is smaller than the stride")
        return (c, h // s, w // s)

    def forward(self, x, outputs, out, ws):
        pool = _channel_pool(self)
        if self.stride > 0 and pool:
            for b in range(x.shape[0]):
                _run_channels(pool, kernels.upsample_job, x.shape[1], x[b], self.stride,
                              np.float32(self.scale), out[b])  # fmt: skip
        elif self.stride > 0:
            for b in range(x.shape[0]):
                kernels.upsample(x[b], self.stride, np.float32(self.scale), out[b])
        else:
            # reverse upsample_cpu: each output sums scale*x over its stride x stride window
            for b in range(x.shape[0]):
                in_steps(x.shape[1], lambda c0, c1: kernels.downsample_sum(
                    x[b, c0:c1], -self.stride, np.float32(self.scale), out[b, c0:c1]))
        return out


@dataclass
class Reorg(Layer):
    """[reorg]: yolov2's "old" reorg (reorg_old_layer.c): reorg_cpu(..., forward=0) is called
    with the *input* shape, so it reads the input buffer as (c/s^2, h*s, w*s) and writes the
    output buffer as (c, h, w); the result is then seen as (c*s^2, h/s, w/s). This is not a
    clean space-to-depth ([reorg3d] is), but it is what yolov2.weights were trained with."""

    KIND = "reorg"
    section: Section
    stride: int
    inputs: list[int] = field(default_factory=list)

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Reorg:
        stride = s.get_int("stride", 1)
        _refuse(s, "reverse", 0)
        _refuse(s, "flatten", 0)
        _refuse(s, "extra", 0)
        if stride < 1:
            raise s.error("stride", "must be >= 1")
        return cls(s, stride)

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        c, h, w = prev
        s = self.stride
        if h % s or w % s:
            raise self.error("stride", f"must divide the {h}x{w} input")
        if c % (s * s):
            raise self.error("stride", f"stride*stride must divide the {c} input channels")
        return (c * s * s, h // s, w // s)

    def forward(self, x, outputs, out, ws):
        # with in_c = c/s^2: flat(out)[k, j, i] = x_as(in_c, h*s, w*s)[k % in_c,
        #   j*s + (k // in_c) // s, i*s + (k // in_c) % s]   for k < c, j < h, i < w
        n, c, h, w = x.shape
        s = self.stride
        in_c = c // (s * s)
        src = x.reshape(n, in_c, h * s, w * s)
        dst = out.reshape(n, c, h, w)
        for off in range(s * s):
            dst[:, off * in_c : (off + 1) * in_c] = src[:, :, off // s :: s, off % s :: s]
        return out


class Head(Layer):
    """A detection head: forward is the identity (Network.forward returns the map fed into it),
    decode() turns one image's map into candidate boxes, objectness and class probabilities
    relative to the network input (postprocess.py), in darknet's get_network_boxes order."""

    PASSTHROUGH = True
    GAUSSIAN_CORRECTION = False  # correct_boxes: correct_yolo_boxes' rounding, not the Gaussian's
    classes: int

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        return prev

    def forward(self, x, outputs, out, ws):
        return x

    def decode(self, raw, net_w, net_h, thresh, hier_thresh):
        raise NotImplementedError


@dataclass
class Yolo(Head):
    """[yolo]: a detection head; forward is the identity, decoding is in postprocess.py."""


    section: Section
    mask: list[int]
    anchors: np.ndarray  # (total, 2) in network-input pixels
    classes: int
    scale_x_y: float
    new_coords: int
    nms_kind: str
    beta_nms: float
    inputs: list[int] = field(default_factory=list)

    IGNORED = frozenset(
        """jitter ignore_thresh truth_thresh random resize iou_normalizer cls_normalizer
        obj_normalizer iou_loss iou_thresh iou_thresh_kind max_delta counters_per_class
        label_smooth_eps focal_loss objectness_smooth uc_normalizer delta_normalizer
        map embedding_layer track_history_size sim_thresh dets_for_track dets_for_show
        track_ciou_norm show_details random_scale""".split()
    )

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Yolo:
        classes = s.get_int("classes", 20)
        num = s.get_int("num", 1)
        mask = s.get_ints("mask", list(range(num)))
        anchors = s.get_floats("anchors", [])
        if len(anchors) % 2:
            raise s.error("anchors", f"{len(anchors)} numbers do not make (w, h) pairs")
        total = len(anchors) // 2
        if total < num and anchors:
            raise s.error("num", f"num={num} but anchors lists only {total} pairs")
        for i in mask:
            if not 0 <= i < max(total, num):
                raise s.error("mask", f"index {i} is out of range for {total} anchors")
        if not anchors:
            anchors = [0.5, 0.5] * max(num, max(mask) + 1)  # parser.c leaves biases at .5
        scale_x_y = s.get_float("scale_x_y", 1.0)
        new_coords = cls._new_coords(s)
        nms_kind = s.get_str("nms_kind", "default")
        if nms_kind not in ("default", "greedynms", "diounms", "cornersnms"):
            raise s.error("nms_kind", "expected default, greedynms, diounms or cornersnms")
        beta_nms = s.get_float("beta_nms", 0.6)
        layer = cls(s, mask, np.array(anchors, np.float32).reshape(-1, 2), classes,
                    scale_x_y, new_coords, nms_kind, beta_nms)  # fmt: skip
        layer.check_input(ctx.prev, ctx)
        return layer

    BOX_ENTRIES = 5  # entries per anchor before the classes: x, y, w, h, objectness

    @staticmethod
    def _new_coords(s: Section) -> int:
        return s.get_int("new_coords", 0)

    def check_input(self, prev: Shape, ctx: Ctx | None = None) -> None:
        e = self.BOX_ENTRIES
        need = len(self.mask) * (self.classes + e)
        if prev[0] != need:
            raise self.error(
                "classes",
                f"the previous layer gives {prev[0]} channels but [{self.section.kind}] needs "
                f"len(mask)*(classes+{e}) = {len(self.mask)}*({self.classes}+{e}) = {need}; "
                "set filters= of the [convolutional] before it to match",
            )

    def decode(self, raw, net_w, net_h, thresh, hier_thresh):
        """One image's (C, h, w) map -> candidate boxes, objectness, probs (postprocess.py)."""
        return postprocess.decode_yolo(raw, self.anchors, self.mask, self.classes,
                                       self.scale_x_y, self.new_coords, net_w, net_h, thresh)


@dataclass
class GaussianYolo(Yolo):
    """[Gaussian_yolo]: Gaussian YOLOv3's head (gaussian_yolo_layer.c). Per anchor: x and its
    uncertainty, y and its, w and its, h and its, objectness, classes; a class's probability
    is scaled by 1 - the mean of the four uncertainties. Forward is the identity, decoding is
    postprocess.decode_gaussian_yolo."""

    KIND = "Gaussian_yolo"
    BOX_ENTRIES = 9
    POINTS = ("center", "left_top", "right_bottom")  # where (x, y) sits in the box
    yolo_point: str = "center"

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> GaussianYolo:
        point = s.get_str("yolo_point", "center")
        if point not in cls.POINTS:  # darknet takes any other word as center
            raise s.error("yolo_point", "expected center, left_top or right_bottom")
        layer = super().from_cfg(s, ctx)
        layer.yolo_point = point
        return layer

    @staticmethod
    def _new_coords(s: Section) -> int:
        return 0  # parse_gaussian_yolo has no new_coords: a cfg's is an unused option

    GAUSSIAN_CORRECTION = True  # correct_gaussian_yolo_boxes

    def decode(self, raw, net_w, net_h, thresh, hier_thresh):
        return postprocess.decode_gaussian_yolo(raw, self.anchors, self.mask, self.classes,
                                                self.scale_x_y, self.yolo_point, net_w, net_h,
                                                thresh)  # fmt: skip


@dataclass
class Region(Head):
    """[region]: yolov2 head; forward is the identity, decoding in postprocess.py (region_layer.c)."""


    section: Section
    anchors: np.ndarray  # (num, 2) in grid cells
    classes: int
    coords: int
    num: int
    softmax: bool
    inputs: list[int] = field(default_factory=list)

    IGNORED = frozenset(
        """jitter rescore bias_match object_scale noobject_scale class_scale coord_scale
        thresh absolute random max_delta focal_loss""".split()
    )

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Region:
        classes = s.get_int("classes", 20)
        coords = s.get_int("coords", 4)
        num = s.get_int("num", 1)
        softmax = bool(s.get_int("softmax", 0))
        anchors = s.get_floats("anchors", [0.5] * (2 * num))
        if len(anchors) != 2 * num:
            raise s.error("anchors", f"needs num*2 = {2 * num} numbers, found {len(anchors)}")
        _refuse(s, "tree", "", "softmax trees (yolo9000) are not supported")
        _refuse(s, "map", "", "class maps are not supported")
        if coords != 4:
            raise s.error("coords", "only coords=4 is supported")
        need = num * (coords + 1 + classes)
        if ctx.prev[0] != need:
            raise s.error(
                "classes",
                f"the previous layer gives {ctx.prev[0]} channels but [region] needs "
                f"num*(coords+1+classes) = {need}",
            )
        anchors_arr = np.array(anchors, np.float32).reshape(num, 2)
        return cls(s, anchors_arr, classes, coords, num, softmax)

    def decode(self, raw, net_w, net_h, thresh, hier_thresh):
        return postprocess.decode_region(raw, self.anchors, self.classes, self.coords, self.num,
                                         self.softmax, net_w, net_h, thresh, hier_thresh)


@dataclass
class DetectionHead(Head):
    """[detection]: YOLOv1's head (detection_layer.c) on a flat input: the classes of every
    cell, then the scales (objectness) of every cell x box, then their coords. Forward is the
    identity, decoding is postprocess.decode_detection."""

    KIND = "detection"

    section: Section
    classes: int
    coords: int
    num: int
    side: int
    softmax: bool
    sqrt: bool
    inputs: list[int] = field(default_factory=list)

    IGNORED = frozenset(
        """jitter rescore object_scale noobject_scale class_scale coord_scale forced random
        reorg max resize""".split()
    )

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> DetectionHead:
        classes = s.get_int("classes", 1)
        coords = s.get_int("coords", 1)
        num = s.get_int("num", 1)
        side = s.get_int("side", 7)
        softmax = bool(s.get_int("softmax", 0))
        sqrt = bool(s.get_int("sqrt", 0))
        if coords != 4:
            raise s.error("coords", "only coords=4 (x, y, w, h) is supported")
        if num < 1 or side < 1 or classes < 1:
            raise s.error(None, "classes, num and side must be >= 1")
        need = side * side * ((1 + coords) * num + classes)
        got = ctx.prev[0] * ctx.prev[1] * ctx.prev[2]
        if got != need:
            raise s.error(
                "side",
                f"the previous layer gives {got} values but [detection] needs "
                f"side*side*((1+coords)*num+classes) = {side}*{side}*((1+{coords})*{num}"
                f"+{classes}) = {need}; set output= of the [connected] before it to match",
            )
        return cls(s, classes, coords, num, side, softmax, sqrt)

    def decode(self, raw, net_w, net_h, thresh, hier_thresh):
        return postprocess.decode_detection(raw, self.classes, self.num, self.side,
                                            self.softmax, self.sqrt, thresh)


@dataclass
class Dropout(Layer):
    """[dropout]: the identity at inference (dropout_layer.c)."""

    PASSTHROUGH = True

    section: Section
    inputs: list[int] = field(default_factory=list)
    IGNORED = frozenset({"probability", "dropblock", "dropblock_size_rel", "dropblock_size_abs"})

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Dropout:
        return cls(s)

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        return prev

    def forward(self, x, outputs, out, ws):
        return x


LAYERS = {
    "convolutional": Convolutional, "conv": Convolutional, "maxpool": MaxPool, "max": MaxPool,
    "route": Route, "shortcut": Shortcut, "upsample": Upsample, "reorg": Reorg,
    "yolo": Yolo, "gaussian_yolo": GaussianYolo, "region": Region, "detection": DetectionHead,
    "dropout": Dropout,
}  # fmt: skip

# The rest of darknet's vocabulary lives in layers_more.py, which builds on the classes above.
from .layers_more import MORE_LAYERS  # noqa: E402

LAYERS.update(MORE_LAYERS)

# Output heads: forward(x) returns the raw map fed into each of these, in cfg order.
HEADS = (Head,)  # Yolo (and GaussianYolo), Region, DetectionHead
