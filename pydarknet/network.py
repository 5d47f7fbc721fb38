"""Network: build layers from cfg sections (shape inference), load weights, forward, detect."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import postprocess
from .cfg import Section, read_cfg
from .errors import CfgError, DarknetError
from .layers import HEADS, LAYERS, TRAINING_KEYS, Ctx, Layer, Region, Shape, Yolo
from .weights import Header, WeightsReader, write_weights

# [net] keys that only matter for training or for darknet's own data loading.
NET_IGNORED = frozenset(
    """batch subdivisions momentum decay angle saturation exposure hue learning_rate burn_in
    max_batches policy steps scales step gamma power mosaic mixup cutmix blur gaussian_noise
    flip label_smooth_eps adversarial_lr attention track time_steps augment_speed sequential_subdivisions
    try_fix_nan letter_box_train mosaic_bound contrastive contrastive_jit_flip unsupervised
    aspect min_crop max_crop loss_scale dynamic_minibatch optimized_memory workspace_size_limit_MB
    resize_step random_size max_chart_loss show_receptive_field max_epochs momentum_scale
    ema_alpha use_cuda_graph inputs""".split()
)


class Network:
    """A darknet network: `layers[i]` is cfg section i+1 (after [net]), as in darknet's indices."""

    def __init__(self, cfg_path: str | Path):
        self.cfg_path = str(cfg_path)
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
            raise net.error(None, "width, height and channels must be set and positive")
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
        self.heads = [i for i, layer in enumerate(self.layers) if isinstance(layer, HEADS)]
        # What forward() returns: the map fed into each head, or for a classifier (no heads)
        # its last layer that is not a [cost] (network.c get_network_output).
        last = len(self.layers) - 1
        while last > 0 and getattr(self.layers[last], "LOSS_ONLY", False):
            last -= 1
        self.output_layers = self.heads or [last]
        self.loaded = False
        self._plan_key: tuple | None = None

    # -- weights -----------------------------------------------------------------------------
    def param_spec(self) -> list[tuple[int, str, int]]:
        """(layer index, parameter name, float count) in the order a .weights file stores them."""
        return [(i, name, n) for i, layer in enumerate(self.layers) for name, n in layer.params()]

    def num_params(self) -> int:
        return sum(n for _, _, n in self.param_spec())

    def load_weights(self, path: str | Path) -> Network:
        """Read a darknet .weights file; its float count must match the cfg exactly."""
        reader = WeightsReader(path, self.num_params(), self.cfg_path)
        self.header = reader.header
        for i, layer in enumerate(self.layers):
            layer.set_header(reader.header)
            arrays = {
                name: reader.take(n, f"layer {i} [{layer.section.kind}] {name}")
                for name, n in layer.params()
            }
            layer.load(arrays)
        reader.finish()
        self.loaded = True
        return self

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

    def _plan(self, n: int, height: int, width: int):
        key = (n, height, width)
        if self._plan_key != key:
            shapes = self.infer_shapes(height, width)
            prevs = [(self.channels, height, width)] + shapes[:-1]
            self._buffers = [
                None if layer.PASSTHROUGH else np.empty((n, *shape), np.float32)
                for layer, shape in zip(self.layers, shapes)
            ]
            ws = max(layer.workspace(p, s) for layer, p, s in zip(self.layers, prevs, shapes))
            self._workspace = np.empty(max(ws, 1), np.float32)
            self._plan_key = key
        return self._buffers, self._workspace

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """x: float32 (N, 3, H, W) RGB in [0, 1] -> the raw (N, C, h, w) map fed into each head."""
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
        buffers, ws = self._plan(*x.shape[:1], *x.shape[2:])
        outputs: list[np.ndarray] = []
        for layer, out in zip(self.layers, buffers):
            x = layer.forward(x, outputs, out, ws)
            outputs.append(x)
        return [outputs[i].copy() for i in self.output_layers]

    # -- description --------------------------------------------------------------------------
    def layer_bflops(self, size: tuple[int, int] | None = None) -> list[float]:
        """Each layer's BFLOPs as darknet stores it: float(flops / 1e9) (l.bflops is a float)."""
        h, w = size or (self.height, self.width)
        shapes = self.infer_shapes(h, w)
        prevs = [(self.channels, h, w)] + shapes[:-1]
        return [float(np.float32(layer.flops(p, s) / 1e9))
                for layer, p, s in zip(self.layers, prevs, shapes)]  # fmt: skip

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
            lines.append(f"{i:4d} {layer.describe(p, s)}" + (f" {bf:5.3f} BF" if bf else ""))
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
        im = image.to_planar_rgb(image_bgr)
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
    def detect(
        self,
        image_bgr: np.ndarray,
        thresh: float = 0.25,
        nms: float = 0.45,
        letterbox: bool | None = None,
        names: list[str] | None = None,
        hier_thresh: float = 0.5,
    ) -> list[postprocess.Detection]:
        """Detections in one BGR uint8 image, as `darknet detector test` finds them."""
        from . import image

        im_h, im_w = image_bgr.shape[:2]
        lb = self.letter_box if letterbox is None else letterbox
        x = image.prepare(image_bgr, self.width, self.height, lb)[None]
        outs = self.forward(x)
        return self.detections_from_outputs([o[0] for o in outs], im_w, im_h, thresh, nms, lb,
                                            names, hier_thresh, self.width, self.height)  # fmt: skip

    def detections_from_outputs(self, outs, im_w, im_h, thresh, nms, letterbox, names,
                                hier_thresh=0.5, net_w=None, net_h=None):  # fmt: skip
        """Decode one image's head outputs, map boxes to the image, NMS, flatten to detections."""
        net_w = net_w or self.width
        net_h = net_h or self.height
        boxes, probs, objs = [], [], []
        for i, raw in zip(self.heads, outs):
            layer = self.layers[i]
            if isinstance(layer, Yolo):
                b, o, p = postprocess.decode_yolo(
                    raw, layer.anchors, layer.mask, layer.classes, layer.scale_x_y,
                    layer.new_coords, net_w, net_h, thresh,
                )  # fmt: skip
            else:
                assert isinstance(layer, Region)
                b, o, p = postprocess.decode_region(
                    raw, layer.anchors, layer.classes, layer.coords, layer.num, layer.softmax,
                    net_w, net_h, thresh, hier_thresh,
                )  # fmt: skip
            boxes.append(b)
            objs.append(o)
            probs.append(p)
        classes = self.layers[self.heads[-1]].classes
        boxes_a = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32)
        objs_a = np.concatenate(objs) if objs else np.zeros(0, np.float32)
        probs_a = np.concatenate(probs) if probs else np.zeros((0, classes), np.float32)
        boxes_a = postprocess.correct_boxes(boxes_a, im_w, im_h, net_w, net_h, letterbox)
        if nms > 0 and len(boxes_a):
            last = self.layers[self.heads[-1]]
            kind = getattr(last, "nms_kind", "default")
            beta = getattr(last, "beta_nms", 0.6)
            order = postprocess.nms(boxes_a, objs_a, probs_a, nms, kind, beta)
            boxes_a, probs_a = boxes_a[order], probs_a[order]  # darknet's final dets order
        return postprocess.to_detections(boxes_a, probs_a, im_w, im_h, names, thresh)


def load(cfg_path: str | Path, weights_path: str | Path | None = None) -> Network:
    """Build the network of a darknet .cfg and, if given, load its .weights."""
    net = Network(cfg_path)
    if weights_path is not None:
        net.load_weights(weights_path)
    return net


__all__ = ["Network", "load", "Section"]
