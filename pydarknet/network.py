"""Network: build layers from cfg sections (shape inference), load weights, forward, detect."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import numpy as np

from . import postprocess, threads
from .cfg import Section, read_cfg
from .errors import CfgError, DarknetError
from .layers import (
    HEADS, LAYERS, TRAINING_KEYS, Convolutional, Ctx, Layer, MaxPool, Route, Shape, Shortcut,
    Upsample, aligned_empty,
)  # fmt: skip
from .weights import Header, WeightsReader, write_weights

# A convolution, maxpool, upsample or shortcut whose single-threaded time is estimated under
# ALONE_SECONDS runs on the calling thread alone. Splitting it costs a wake-up of the other thread
# and GIL hand-offs between the steps' kernels, each a futex wake-up (~30-80 us on a VM), more
# than the split saves: on 2 threads, 2 steps of 100 us took 297 us where one thread took 202.
# Estimated time: darknet's flops at CONV_FLOPS_PER_SECOND for a convolution (not depthwise; the
# threshold times its pool jobs: a small-map Winograd layer hands out two), the separable
# maxpool's compares, upsample's copies or a shortcut's adds at OTHER_WORK_PER_SECOND (one core,
# measured per layer). 2 threads, in one run: yolov7-tiny at 128 19.0 -> 14.9 ms and at 256
# 26.5 -> 25.5; yolov4-tiny, yolov3-tiny, enet and efficientnet the same. At 400 us
# efficientnet_b0 was 6% slower (its 28x28 1x1s split well); 300-600 us gained nothing
# consistent elsewhere.
ALONE_SECONDS = 200e-6
# A convolution whose steps run as compiled pool jobs (Convolutional.jit_jobs) hands them out
# with no GIL hand-off, to a worker that is still spinning from the last job: its threshold is
# lower (2 threads, same process, alternating: yolov7-tiny at 128 10.3 -> 9.2 ms, at 256 18.5 ->
# 17.7, at 416 and yolov4-csp the same; the 13x13 256 -> 128 1x1 layers of yolov4-tiny and
# yolov3-tiny 0.21 -> 0.14 ms. At 25 us yolov7-tiny at 128 was 3% slower than at 60). Maxpools
# whose steps are a compiled job too (MaxPool.jit_jobs) take the same threshold; with Python
# steps, at 60 us they were slower than at 200 (0.13 -> 0.22 ms).
ALONE_JIT_SECONDS = 60e-6
# How _run runs each layer (the plan's modes): split over the pool, on the calling thread alone,
# or not at all (a concatenating route whose producers wrote in place: a call finding that took
# ~5 us a route, ~40 us of yolov4-tiny's forward).
_SPLIT, _ALONE, _SKIP = 0, 1, 2
CONV_FLOPS_PER_SECOND = 80e9
OTHER_WORK_PER_SECOND = 4e9

# [net] keys that only matter for training or for darknet's own data loading.
NET_IGNORED = frozenset(
    """batch subdivisions momentum decay angle saturation exposure hue learning_rate burn_in
    max_batches policy steps scales step gamma power mosaic mixup cutmix blur gaussian_noise
    flip label_smooth_eps adversarial_lr attention track time_steps augment_speed sequential_subdivisions
    try_fix_nan letter_box_train mosaic_bound contrastive contrastive_jit_flip unsupervised
    aspect min_crop max_crop loss_scale dynamic_minibatch optimized_memory workspace_size_limit_MB
    resize_step random_size max_chart_loss show_receptive_field max_epochs momentum_scale
    ema_alpha use_cuda_graph inputs learning_rate_min sgdr_cycle sgdr_mult weights_reject_freq
    equidistant_point badlabels_rejection_percentage num_sigmas_reject_badlabels adam B1 B2 eps
    contrastive_color scale seq_scales""".split()
)


class Network:
    """A darknet network: `layers[i]` is cfg section i+1 (after [net]), as in darknet's indices."""

    def __init__(self, cfg_path: str | Path):
        self.cfg_path = str(cfg_path)
        self._resolved_cfg = str(Path(cfg_path).resolve())  # for kernel_key: ~100 us a call
        sections = read_cfg(cfg_path)
        net = sections[0]
        if net.kind != "net":
            raise CfgError(f"the first section is [{net.kind}]; expected [net]", net.path, net.line)
        self.net_section = net
        self.width = net.get_int("width", 0)
        self.height = net.get_int("height", 0)
        self.channels = net.get_int("channels", 0)
        self.letter_box = bool(net.get_int("letter_box", 0))
        if self.width < 1 or self.height < 1 or self.channels < 1:
            why = "width, height and channels must be set and positive"
            if net.has("inputs"):  # a recurrent or fully connected model on a flat input
                why += "; a flat [net] inputs= (recurrent models) is not supported"
            raise net.error(None, why)
        net.warn_unused(NET_IGNORED | TRAINING_KEYS)

        self.layers: list[Layer] = []
        shapes: list[Shape] = []
        prev: Shape = (self.channels, self.height, self.width)
        for i, s in enumerate(sections[1:]):
            cls = LAYERS.get(s.kind)
            if cls is None:
                supported = ", ".join(sorted(k for k, c in LAYERS.items()
                                             if not getattr(c, "REFUSED", False)))  # fmt: skip
                raise CfgError(f"unknown section [{s.kind}]; supported: {supported}", s.path, s.line)
            if s.kind == "net":
                raise CfgError("a second [net] section", s.path, s.line)
            layer = cls.from_cfg(s, Ctx(i, shapes, prev, sections))
            prev = layer.infer(shapes, prev)
            s.warn_unused(cls.IGNORED | TRAINING_KEYS)
            self.layers.append(layer)
            shapes.append(prev)
        if not self.layers:
            raise CfgError("the cfg has no layers after [net]", net.path, net.line)
        self.shapes = shapes  # at the cfg's own input size
        self._chain_spp_pools()
        self.heads = [i for i, layer in enumerate(self.layers) if isinstance(layer, HEADS)]
        # What forward() returns: the map fed into each head, or for a classifier (no heads)
        # its last layer that is not a [cost] (network.c get_network_output).
        last = len(self.layers) - 1
        while last > 0 and getattr(self.layers[last], "LOSS_ONLY", False):
            last -= 1
        self.output_layers = self.heads or [last]
        self.all_heads = list(self.heads)
        self.kept_heads = list(range(len(self.heads)))
        self.share_memory = True  # False: every layer keeps its own buffer (darknet's way)
        self.active = [True] * len(self.layers)  # prune() turns off what no kept head needs
        self.loaded = False
        self.streamed: dict[int, int] = {}  # layer -> floats load_weights(stream=True) left
        self._plans: dict[tuple, tuple] = {}  # memory plans by (n, size, threads, ..., copy)
        self._plans_lock = threading.Lock()
        self._winograd = True

    def _chain_spp_pools(self) -> None:
        """An SPP block pools one layer's output with 5, 9 and 13: each centred stride-1
        [maxpool] that reads the same layer as a smaller one before it pools that one's output
        instead (MaxPool.pool_again), so the block does three 5x5 pools' work instead of 5x5,
        9x9 and 13x13 (the same numbers; yolov4-csp's SPP at 512, 2 threads: 3.2 -> 2.1 ms)."""
        largest: dict[int, tuple[int, int]] = {}  # layer read -> (size, index) of its largest pool
        for i, layer in enumerate(self.layers):
            if i == 0 or type(layer) is not MaxPool or not layer.centred:
                continue
            src = i - 1
            while isinstance(self.layers[src], Route) and len(self.layers[src].inputs) == 1 \
                    and self.layers[src].groups == 1:  # fmt: skip
                src = self.layers[src].inputs[0]
            size, k = largest.get(src, (0, -1))
            if size >= layer.size:
                continue
            if k >= 0:
                layer.pool_again(k, size)
            largest[src] = (layer.size, i)

    @property
    def winograd(self) -> bool:
        """True (the default): 3x3 layers may run as Winograd convolutions, whose transformed
        weights are made on the first forward and pay back from the second. False: im2col
        only, for a process that runs one forward (`detect` on one image: yolov3-tiny's first
        forward 85 -> 62 ms, nothing transformed, the 3x3 weights used as they are)."""
        return self._winograd

    @winograd.setter
    def winograd(self, on: bool) -> None:
        self._winograd = bool(on)
        for layer in self.layers:
            if isinstance(layer, Convolutional):
                layer.use_winograd = self._winograd
            elif isinstance(layer, (MaxPool, Shortcut, Upsample)):
                layer.use_jobs = self._winograd  # (their compiled jobs: more to compile)
        self._plans.clear()  # workspaces differ

    # -- weights -----------------------------------------------------------------------------
    def param_spec(self) -> list[tuple[int, str, int]]:
        """(layer index, parameter name, float count) in the order a .weights file stores them."""
        return [(i, name, n) for i, layer in enumerate(self.layers) for name, n in layer.params()]

    def num_params(self) -> int:
        return sum(n for _, _, n in self.param_spec())

    def load_weights(self, path: str | Path, stream: bool = False) -> Network:
        """Read a darknet .weights file; its float count must match the cfg exactly.

        stream=True: the convolutions' weights (nearly all of a model's floats) stay in the
        file until a forward needs them: each layer's are read as it runs (ahead of it on a
        thread, _ReadAhead) and freed after it, so a forward never holds more weights than its
        largest layer's instead of the model's. For a process that runs one forward (`detect`
        on one image: yolov3-tiny's peak RSS 129.7 -> 115 MB, yolov4's 458 -> 237); every
        later forward reads them again. The file must stay as it is until then (a change is an
        error). A file that cannot be read again (a pipe) is read whole as usual."""
        # a forward follows: Numba's set-up and the kernels' loading overlap the reading
        threads.start_numba_setup(self.kernel_key(self.height, self.width))
        streamed = {}
        with WeightsReader(path, self.num_params(), self.cfg_path) as reader:
            self.header = reader.header
            for i, layer in enumerate(self.layers):
                layer.set_header(reader.header)
                arrays, places = {}, {}
                for name, n in layer.params():
                    places[name] = reader.where(n)
                    what = f"layer {i} [{layer.section.kind}] {name}"
                    if stream and name in layer.STREAMED and places[name] is not None:
                        reader.skip(n, what)
                        streamed[i] = streamed.get(i, 0) + n
                    else:
                        arrays[name] = reader.take(n, what)
                layer.load(arrays)
                layer.locate(places)
            reader.finish()
        self.streamed = streamed
        self.loaded = True
        return self

    def kernel_key(self, height: int, width: int) -> str:
        """Names the kernel overloads a forward pass at height x width uses, for their preload."""
        mode = "" if self._winograd else " im2col"
        return f"{self._resolved_cfg} {height}x{width}{mode}"

    def random_weights(self, seed: int = 0) -> list[np.ndarray]:
        """Plausible random parameters in .weights order (for tests and benchmarks).

        Drawn directly in float32 (P7 has 276M parameters: float64 draws would double the time
        and memory).
        """
        rng = np.random.default_rng(seed)
        f32 = np.float32

        def uniform(lo: float, hi: float, n: int) -> np.ndarray:
            return rng.random(n, dtype=f32) * f32(hi - lo) + f32(lo)

        arrays = []
        for i, name, n in self.param_spec():
            layer = self.layers[i]
            fan_in = getattr(layer, "fan_in", None)
            if name == "weights" and fan_in:
                a = rng.standard_normal(n, dtype=f32) * f32(1.0 / np.sqrt(fan_in))
            elif name == "scales":
                # below 1 so that deep residual stacks (P5-P7: 40-55 [shortcut]s) do not grow
                # into saturated logistic heads; tiny nets keep O(1) outputs
                a = uniform(0.3, 0.7, n)
            elif name == "rolling_variance":
                a = uniform(0.5, 1.5, n)
            elif name == "weights":
                a = uniform(0.2, 1.0, n)
            else:
                a = uniform(-0.5, 0.5, n)
            arrays.append(a)
        return arrays

    def save_random_weights(self, path: str | Path, seed: int = 0) -> Path:
        """Write a random-weights .weights file that matches this cfg and load it."""
        write_weights(path, self.random_weights(seed), Header())
        self.load_weights(path)
        return Path(path)

    # -- forward -----------------------------------------------------------------------------
    def infer_shapes(self, height: int, width: int) -> list[Shape]:
        """Every layer's output shape for an input of height x width (darknet resize_network)."""
        shapes: list[Shape] = []
        prev: Shape = (self.channels, height, width)
        for layer in self.layers:
            try:
                prev = layer.infer(shapes, prev)
            except CfgError as e:
                raise DarknetError(f"input size {width}x{height} does not fit this network: {e}")
            shapes.append(prev)
        return shapes

    # -- heads and the layers that compute them --------------------------------------------
    def _needs(self, i: int) -> list[int]:
        """The layers whose outputs layer i reads: the previous one (unless it ignores it, like
        [route]) and the ones its options name."""
        layer = self.layers[i]
        prev = [i - 1] if i > 0 and getattr(layer, "USES_PREV", True) else []
        return prev + list(getattr(layer, "inputs", []))

    def prune(self, heads: list[int] | None = None) -> Network:
        """Compute only what the given heads need (positions in `all_heads`, cfg order); None
        restores every head. Scaled-YOLOv4's once-for-all sub-networks (paper section 5.5):
        P7 with heads [0, 1, 2, 3] is "P7\\P7" and skips the layers that only feed the P7 head;
        their weights still load. forward() then returns the kept heads only."""
        every = self.all_heads
        keep = sorted(set(range(len(every)) if heads is None else heads))
        if not every or not keep or not all(0 <= k < len(every) for k in keep):
            raise DarknetError(
                f"{self.cfg_path}: heads {heads} do not name any of its {len(every)} heads "
                f"(0..{len(every) - 1}, in cfg order)"
            )
        needed = [False] * len(self.layers)
        stack = [every[k] for k in keep]
        while stack:
            i = stack.pop()
            if not needed[i]:
                needed[i] = True
                stack += self._needs(i)
        self.active = needed
        self.kept_heads = keep
        self.heads = [every[k] for k in keep]
        self.output_layers = list(self.heads)
        self._plans.clear()
        return self

    def head_levels(self, height: int | None = None, width: int | None = None) -> list[int]:
        """Each head's pyramid level P = log2(input width / head width): 3 for stride 8."""
        shapes = self.infer_shapes(height or self.height, width or self.width)
        return [int(round(np.log2((width or self.width) / shapes[i][2]))) for i in self.all_heads]

    # -- memory plan -------------------------------------------------------------------------
    def _plan(self, n: int, height: int, width: int, copy: int = 0):
        """Where every layer writes (network.c allocates one buffer per layer; we share).

        copy: which of the independent plans (arena and workspace) of the same shape, one per
        thread when images run in parallel.

        Outputs live in "roots": an arena slice, or for outputs forward() returns a fresh array
        per call. A [route] of one input is a view of it (a channel slice is contiguous for one
        image); a concatenating [route] lends each input layer its channel range, so producers
        write in place and the route copies nothing. Roots whose lifetimes (first writer to
        last reader) do not overlap share arena memory.
        """
        key = (n, height, width, threads.pool().size, tuple(self.active), self.share_memory, copy)
        with self._plans_lock:
            plan = self._plans.get(key)
            if plan is None:
                if len(self._plans) >= 8:  # sizes come and go: keep the plans of the latest
                    self._plans.pop(next(iter(self._plans)))
                plan = self._plans[key] = self._make_plan(n, height, width)
            return plan

    def _make_plan(self, n: int, height: int, width: int):
        shapes = self.infer_shapes(height, width)
        prevs = [(self.channels, height, width)] + shapes[:-1]
        layers, active, count = self.layers, self.active, len(self.layers)
        # home[i] = (layer that owns the memory, channel offset in it), resolved below
        home: list[tuple[int, int] | None] = [None] * count
        owner = [active[i] and not layers[i].PASSTHROUGH for i in range(count)]
        for i, layer in enumerate(layers):
            if not active[i]:
                continue
            if layer.PASSTHROUGH:
                home[i] = (i - 1, 0) if i > 0 else None  # layer 0 passes the input through
            elif not self.share_memory:
                continue
            elif isinstance(layer, Route) and len(layer.inputs) == 1:
                src = layer.inputs[0]
                if layer.groups == 1 or n == 1:  # a contiguous slice of the input
                    home[i] = (src, shapes[src][0] // layer.groups * layer.group_id)
                    owner[i] = False
        if n == 1 and self.share_memory:
            adopted = set()
            for r, layer in enumerate(layers):
                if not (owner[r] and isinstance(layer, Route) and layer.groups == 1):
                    continue
                offset = 0
                for i in layer.inputs:
                    if owner[i] and i not in adopted and home[i] is None:
                        home[i] = (r, offset)
                        adopted.add(i)
                    offset += shapes[i][0]

        def root(i: int) -> tuple[int, int]:
            offset = 0
            while home[i] is not None:
                i, off = home[i]
                offset += off
            return i, offset

        roots = {i: root(i) for i in range(count)
                 if active[i] and not (i == 0 and layers[0].PASSTHROUGH)}  # fmt: skip
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for i, (r, _) in roots.items():
            first[r] = min(first.get(r, i), i)
            last[r] = max(last.get(r, i), i)
            for j in self._needs(i):
                rj = roots[j][0] if j in roots else None
                if rj is not None:
                    last[rj] = max(last[rj], i)
        fresh = {roots[i][0] for i in self.output_layers if i in roots}
        if not self.share_memory:  # every root alive from start to end: no reuse
            first = dict.fromkeys(first, 0)
            last = dict.fromkeys(last, count)
        sizes = {r: n * int(np.prod(shapes[r])) for r in first}
        # greedy by size: each root at the lowest 64-byte-aligned offset free during its life
        offsets: dict[int, int] = {}
        placed: list[tuple[int, int, int, int]] = []  # (start, end, first, last)
        for r in sorted((r for r in first if r not in fresh), key=lambda r: -sizes[r]):
            start = 0
            for a, b, f, l in sorted(placed):
                if f <= last[r] and first[r] <= l and a < start + sizes[r] and start < b:
                    start = -(-b // 16) * 16
            offsets[r] = start
            placed.append((start, start + sizes[r], first[r], last[r]))
        arena = aligned_empty(max([b for _, b, _, _ in placed] + [1]))
        views = {r: arena[o : o + sizes[r]].reshape(n, *shapes[r]) for r, o in offsets.items()}
        slots = [
            None if not active[i] or layers[i].PASSTHROUGH else (roots[i][0], roots[i][1])
            for i in range(count)
        ]
        alone = [active[i] and self._runs_alone(layers[i], prevs[i], shapes[i], n)
                 for i in range(count)]  # fmt: skip
        ws = 0
        for i in range(count):
            if active[i]:
                with threads.serial() if alone[i] else contextlib.nullcontext():
                    ws = max(ws, layers[i].workspace(prevs[i], shapes[i]))
        self.arena_floats = arena.size
        modes = [_ALONE if a else _SPLIT for a in alone]
        planned = [None if slot is None or slot[0] in fresh
                   else views[slot[0]][:, slot[1] : slot[1] + shapes[i][0]]
                   for i, slot in enumerate(slots)]  # fmt: skip
        for i, layer in enumerate(layers):  # a route whose producers all wrote in place
            if (active[i] and isinstance(layer, Route) and planned[i] is not None
                    and all(planned[k] is not None for k in layer.inputs)
                    and layer.in_place(planned, planned[i])):  # fmt: skip
                modes[i] = _SKIP
        return (slots, views, sorted(fresh), shapes, aligned_empty(max(ws, 1)), arena.size,
                modes)  # fmt: skip

    @staticmethod
    def _runs_alone(layer, prev, out, n: int) -> bool:
        """Whether a layer is too small to split over the pool: its steps would wait on handing
        out more than they save (see ALONE_SECONDS)."""
        if threads.pool().size == 1:
            return False
        values = n * float(np.prod(out))
        if isinstance(layer, Convolutional):  # GEMMs; depthwise ones run far below that rate
            jobs = layer.pool_jobs(out)  # each costs its hand-offs
            flops = n * layer.flops(prev, out)
            alone = ALONE_JIT_SECONDS if layer.jit_jobs(out) else ALONE_SECONDS
            return layer.groups == 1 and flops < jobs * alone * CONV_FLOPS_PER_SECOND
        if type(layer) is MaxPool:  # kernels.maxpool is separable: 2 * size compares per value
            size = layer.window or layer.size  # an SPP pool pooling a smaller one's output
            alone = ALONE_JIT_SECONDS if layer.use_jobs and layer.jit_jobs() else ALONE_SECONDS
            return 2 * size * values < alone * OTHER_WORK_PER_SECOND
        if type(layer) is Upsample:  # one copy per value
            return values < ALONE_JIT_SECONDS * OTHER_WORK_PER_SECOND
        if type(layer) is Shortcut:  # one add per value and input
            alone = ALONE_JIT_SECONDS if layer.jit_job() else ALONE_SECONDS
            return values * len(layer.inputs) < alone * OTHER_WORK_PER_SECOND
        return False  # not measured: the activations, blurs and poolings of the zoo split well

    def bytes_per_image(self, height: int, width: int) -> int:
        """The activation arena plus convolution workspace one image's forward needs at height x
        width on one thread: what each thread adds when a batch runs one image per thread."""
        with threads.serial():
            *_, ws, arena, _ = self._plan(1, height, width, copy=0)
        return 4 * (arena + ws.size)

    def _buffers(self, n: int, height: int, width: int,
                 copy: int = 0) -> tuple[list, np.ndarray, list[int]]:  # fmt: skip
        """Each layer's output buffer, the workspace, and how _run runs each layer (_SPLIT,
        _ALONE, _SKIP)."""
        slots, views, fresh, shapes, ws, _, modes = self._plan(n, height, width, copy)
        views = dict(views)
        for r in fresh:  # returned to the caller: new memory on every call
            views[r] = np.empty((n, *shapes[r]), np.float32)
        buffers = []
        for i, slot in enumerate(slots):
            if slot is None:
                buffers.append(None)
            else:
                r, offset = slot
                buffers.append(views[r][:, offset : offset + shapes[i][0]])
        return buffers, ws, modes

    def forward(self, x: np.ndarray, profile: list | None = None) -> list[np.ndarray]:
        """x: float32 (N, 3, H, W) RGB in [0, 1] -> the raw (N, C, h, w) map fed into each head.

        profile: a list that receives (layer index, seconds) for every layer computed.
        """
        if not self.loaded:
            raise DarknetError("no weights loaded; call load_weights() first")
        x = np.asarray(x)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise DarknetError(
                f"input has shape {x.shape}; expected (N, {self.channels}, H, W) float32"
            )
        x = np.ascontiguousarray(x, dtype=np.float32)
        # the set-up's kernels are loaded and LLVM's pages released before the activations
        # and transformed weights are allocated: peak RSS is the larger of the two, not the sum
        threads.wait_numba_setup()
        threads.release_library_pages()
        pool = threads.pool()
        with threads.blas_single(), threads.remembering_kernels(self.kernel_key(*x.shape[2:])):
            if profile is None and x.shape[0] > 1 and pool.size > 1:
                return self._forward_images(x, pool)
            buffers, ws, modes = self._buffers(x.shape[0], *x.shape[2:])
            return self._run(x, buffers, ws, modes, profile)

    def _run(self, x, buffers, ws, modes, profile=None, stream=True) -> list[np.ndarray]:
        """The layers in order on x, each writing its planned buffer; by `modes` (the plan's),
        some on the calling thread only, routes whose inputs are in place not at all.
        stream: streamed weights are read ahead and freed after their layer (else read when
        first used and kept, for images run in parallel)."""
        streamed = {i: n for i, n in self.streamed.items() if stream and self.active[i]}
        ahead = _ReadAhead(self.layers, streamed)
        outputs: list[np.ndarray | None] = []
        clock = time.perf_counter
        try:
            for i, (layer, out) in enumerate(zip(self.layers, buffers)):
                if not self.active[i]:
                    outputs.append(None)
                    continue
                t0 = clock() if profile is not None else 0.0
                mode = modes[i]
                if mode == _SPLIT:
                    y = layer.forward(x, outputs, out, ws)
                elif mode == _ALONE:
                    with threads.serial():
                        y = layer.forward(x, outputs, out, ws)
                else:  # _SKIP: the route's output already holds its inputs
                    y = out
                if out is not None and y is not out:
                    np.copyto(out, y)  # the plan's readers look in out
                    y = out
                if profile is not None:
                    profile.append((i, clock() - t0))
                if i in streamed:
                    ahead.next(layer)
                outputs.append(y)
                x = y
        finally:
            ahead.stop()
        return [outputs[i] for i in self.output_layers]

    def _forward_images(self, x: np.ndarray, pool) -> list[np.ndarray]:
        """A batch as single images, one per pool thread at a time, each with its own arena and
        workspace and its layers' steps run in turn on that thread: no job per layer to hand
        out and wait for, full-size GEMMs. Outputs are bit-identical to one-thread forwards;
        throughput is ~1.9x one thread's on 2 cores, where splitting every layer gives ~1.6x."""
        results: list[list[np.ndarray] | None] = [None] * x.shape[0]

        def one(b: int, slot: int) -> None:
            with threads.serial():
                buffers, ws, modes = self._buffers(1, *x.shape[2:], copy=slot)
                # outputs: fresh arrays; streamed weights are kept for the other images
                results[b] = self._run(x[b : b + 1], buffers, ws, modes, stream=False)

        pool.run(one, x.shape[0])
        return [np.concatenate([r[k] for r in results]) for k in range(len(self.output_layers))]

    # -- description --------------------------------------------------------------------------
    def layer_bflops(self, size: tuple[int, int] | None = None) -> list[float]:
        """Each layer's BFLOPs as darknet stores it: float(flops / 1e9) (l.bflops is a float)."""
        h, w = size or (self.height, self.width)
        shapes = self.infer_shapes(h, w)
        prevs = [(self.channels, h, w)] + shapes[:-1]
        return [float(np.float32(layer.flops(p, s) / 1e9)) if on else 0.0
                for layer, p, s, on in zip(self.layers, prevs, shapes, self.active)]  # fmt: skip

    def bflops(self, size: tuple[int, int] | None = None) -> float:
        """darknet's "Total BFLOPS": the per-layer values summed into a float (parser.c)."""
        total = np.float32(0)
        for bf in self.layer_bflops(size):
            total = np.float32(total + np.float32(bf))
        return float(total)

    def summary(self, size: tuple[int, int] | None = None) -> str:
        """A darknet-style layer table (parser.c / make_*_layer prints) with BFLOPs and params."""
        h, w = size or (self.height, self.width)
        shapes = self.infer_shapes(h, w)
        prevs = [(self.channels, h, w)] + shapes[:-1]
        lines = [f"{self.cfg_path}: input {w}x{h}x{self.channels}",
                 "   layer   type        filters size/strd(dil)  input               output"]  # fmt: skip
        for i, (layer, p, s, bf) in enumerate(zip(self.layers, prevs, shapes,
                                                  self.layer_bflops(size))):  # fmt: skip
            lines.append(f"{i:4d} {layer.describe(p, s)}" + (f" {bf:5.3f} BF" if bf else "")
                         + ("" if self.active[i] else "  (not computed: pruned head)"))
        lines.append(f"Total BFLOPS {self.bflops(size):5.3f}")
        lines.append(f"Parameters {self.num_params():,}")
        return "\n".join(lines)

    # -- classification ----------------------------------------------------------------------
    def classify(self, image_bgr: np.ndarray, top: int = 5) -> list[tuple[int, float]]:
        """The top (class index, probability) pairs for one BGR uint8 image, best first, as
        `darknet classifier predict` finds them (classifier.c predict_classifier, utils.c top_k).

        The image is resized so its shorter side is the network width (image.c resize_min,
        darknet's bilinear resize), then the centre net_w x net_h is cropped (crop_image clamps
        at the edges).
        """
        from . import image

        if self.heads:
            raise DarknetError(f"{self.cfg_path}: has [yolo]/[region] heads; it is a detector")
        im = image.as_image(image_bgr, self.channels)
        im = image.to_planar_rgb(image.to_channels(im, self.channels))
        _, ih, iw = im.shape
        if iw < ih:  # resize_min
            w, h = self.width, ih * self.width // iw
        else:
            w, h = iw * self.width // ih, self.width
        if (w, h) != (iw, ih):
            im = image.resize_image(im, w, h)
        dx, dy = int((w - self.width) / 2), int((h - self.height) / 2)  # C division truncates
        rows = np.clip(np.arange(self.height) + dy, 0, h - 1)
        cols = np.clip(np.arange(self.width) + dx, 0, w - 1)
        x = np.ascontiguousarray(im[:, rows][:, :, cols])[None]
        probs = self.forward(x)[0].reshape(-1)
        order = np.argsort(-probs, kind="stable")[:top]  # top_k keeps the first of equals
        return [(int(i), float(probs[i])) for i in order]

    # -- detection ---------------------------------------------------------------------------
    def prepare_image(self, image_bgr: np.ndarray, width: int, height: int,
                      letterbox: bool) -> np.ndarray:  # fmt: skip
        """image.prepare, with its kernel saved beside the forward's for the next process's
        preload of this model."""
        from . import image

        im = image.to_channels(image_bgr, self.channels)
        with threads.remembering_kernels(self.kernel_key(self.height, self.width), "prepare"):
            return image.prepare(im, width, height, letterbox)

    def detect(
        self,
        image_bgr: np.ndarray,
        thresh: float = 0.25,
        nms: float = 0.45,
        letterbox: bool | None = None,
        names: list[str] | None = None,
        hier_thresh: float = 0.5,
    ) -> list[postprocess.Detection]:
        """Detections in one BGR uint8 image (or image file), as `darknet detector test` finds
        them."""
        from . import image

        image_bgr = image.as_image(image_bgr, self.channels)
        im_h, im_w = image_bgr.shape[:2]
        lb = self.letter_box if letterbox is None else letterbox
        x = self.prepare_image(image_bgr, self.width, self.height, lb)[None]
        outs = self.forward(x)
        return self.detections_from_outputs([o[0] for o in outs], im_w, im_h, thresh, nms, lb,
                                            names, hier_thresh, self.width, self.height)  # fmt: skip

    def detections_from_outputs(self, outs, im_w, im_h, thresh, nms, letterbox, names,
                                hier_thresh=0.5, net_w=None, net_h=None):  # fmt: skip
        """Decode one image's head outputs, map boxes to the image, NMS, flatten to detections."""
        boxes, objs, probs = self.candidates(outs, im_w, im_h, thresh, letterbox, hier_thresh,
                                             net_w or self.width, net_h or self.height)  # fmt: skip
        return self.finish(boxes, objs, probs, im_w, im_h, thresh, nms, names)

    def candidates(self, outs, im_w, im_h, thresh, letterbox, hier_thresh=0.5, net_w=None,
                   net_h=None, flipped=False):  # fmt: skip
        """One image's head maps -> (boxes, objectness, probs), boxes relative to the image.

        darknet's get_network_boxes, head by head in cfg order (each head's decode(): yolo_layer.c
        get_yolo_detections, region_layer.c, ...; then correct_yolo_boxes). flipped: the input was
        mirrored left-right, so box centres are mirrored back before the letterbox correction.
        """
        net_w = net_w or self.width
        net_h = net_h or self.height
        boxes, objs, probs = [], [], []
        for i, raw in zip(self.heads, outs):
            layer = self.layers[i]
            b, o, p = layer.decode(raw, net_w, net_h, thresh, hier_thresh)
            if flipped:
                b[:, 0] = np.float32(1) - b[:, 0]
            boxes.append(postprocess.correct_boxes(b, im_w, im_h, net_w, net_h, letterbox,
                                                   layer.GAUSSIAN_CORRECTION))  # fmt: skip
            objs.append(o)
            probs.append(p)
        classes = self.layers[self.heads[-1]].classes
        if not boxes:
            return (np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                    np.zeros((0, classes), np.float32))  # fmt: skip
        return (np.concatenate(boxes).astype(np.float32, copy=False),
                np.concatenate(objs).astype(np.float32, copy=False),
                np.concatenate(probs).astype(np.float32, copy=False))  # fmt: skip

    def finish(self, boxes, objs, probs, im_w, im_h, thresh, nms, names):
        """NMS of the cfg's last layer's nms_kind (test_detector; default when that layer is not
        a [yolo]), then one Detection per (box, class),
        listed in the order darknet's dets array has after NMS (its -out JSON order)."""
        probs = np.array(probs, np.float32)  # nms zeroes probs in place: keep the caller's
        if nms > 0 and len(boxes):
            last = self.layers[-1]  # test_detector: net.layers[net.n - 1], a head or not
            kind = getattr(last, "nms_kind", "default")
            beta = getattr(last, "beta_nms", 0.6)
            with threads.remembering_kernels(self.kernel_key(self.height, self.width), "nms"):
                order = postprocess.nms(boxes, objs, probs, nms, kind, beta)
            boxes, probs = boxes[order], probs[order]
        return postprocess.to_detections(boxes, probs, im_w, im_h, names, thresh)


class _ReadAhead:
    """Reads streamed layers' weights (Network.load_weights(stream=True)) in forward order on
    a thread, one layer ahead of the forward where the two layers' weights together are no
    more than the largest layer's (else when the forward reaches it): the reads overlap the
    layers before, and the forward never holds more weights than the largest layer's (with
    any two at once, yolov3-tiny's detect peaked 4 MB higher). A layer the thread has not
    reached is read by the forward itself when it needs it (the weights property reads once,
    whichever thread asks first), and the thread skips it; a failed read is left to the
    forward, which reports it. Layers whose weights a made form replaces (Winograd's U) are
    not read."""

    def __init__(self, layers: list, floats: dict[int, int]):
        self._thread = None
        if not floats:
            return
        order = sorted(floats)
        sizes = [floats[i] for i in order]
        most = max(sizes)
        self._turn = threading.Condition()
        self._done = 0  # streamed layers the forward has run
        self._stopped = False

        def read() -> None:
            for k, i in enumerate(order):
                with self._turn:  # a layer is dropped (next()) only between two reads
                    self._turn.wait_for(lambda: self._stopped or self._done >= k or (
                        self._done == k - 1 and sizes[k - 1] + sizes[k] <= most))
                    if self._stopped:
                        return
                    if self._done > k or not layers[i].wants_streamed():
                        continue  # run already (the forward read it), or not needed
                    try:
                        layers[i].weights  # noqa: B018 - the property reads them
                    except Exception:
                        return

        self._thread = threading.Thread(target=read, name="pydarknet-weights", daemon=True)
        self._thread.start()

    def next(self, layer) -> None:
        """A streamed layer has run: free its weights; the thread may read one layer more."""
        with self._turn:
            layer.drop_streamed()
            self._done += 1
            self._turn.notify()

    def stop(self) -> None:
        if self._thread is not None:
            with self._turn:
                self._stopped = True
                self._turn.notify()
            self._thread.join()


def load(cfg_path: str | Path, weights_path: str | Path | None = None,
         winograd: bool = True, stream: bool = False) -> Network:
    """Build the network of a darknet .cfg and, if given, load its .weights.
    For a single forward: winograd=False (see Network.winograd), stream=True (see
    Network.load_weights)."""
    net = Network(cfg_path)
    net.winograd = winograd  # before the weights: their read starts the kernels' preload
    if weights_path is not None:
        net.load_weights(weights_path, stream=stream)
    return net


__all__ = ["Network", "load", "Section"]
