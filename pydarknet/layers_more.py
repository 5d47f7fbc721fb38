"""The rest of Darknet's inference vocabulary: pooling variants, attention, classifier heads.

Same contract as layers.py (from_cfg / infer / params / load / forward); LAYERS there lists these
classes too. Each class names the AlexeyAB darknet source it mirrors (src/*_layer.c, parser.c).
Sections Darknet parses but that only make sense for training or recurrent models are in REFUSED:
building such a cfg is a CfgError naming file:line, never a silent approximation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import kernels
from .cfg import Section
from .layers import (
    Convolutional,
    Ctx,
    Layer,
    MaxPool,
    Shape,
    act_scratch,
    in_steps,
    _activation,
    _layer_index,
    _refuse,
)  # fmt: skip

_F = np.float32
_FLT_MAX = _F(3.4028234663852886e38)

# activate() in activations.c has no case for these: layers that call activate_array() (sam,
# scale_channels, connected, local, [activation]) output 0 with them on the CPU.
_NOT_IN_ACTIVATE = ("swish", "mish", "hard_mish", "relu6")


def _plain_activation(s: Section, default: str) -> int:
    """An activation for a layer that uses darknet's activate_array() (no swish/mish there)."""
    name = s.get_str("activation", default)
    if name in _NOT_IN_ACTIVATE:
        raise s.error(
            "activation",
            f"darknet's activate_array() has no case for {name} (its CPU path outputs 0 here); "
            "use it in [convolutional] or [shortcut]",
        )
    return _activation(s, default)


def _activate_inplace(out: np.ndarray, code: int) -> None:
    if code != kernels.LINEAR:
        kernels.activate(out.reshape(out.shape[0] * out.shape[1], -1), code, *act_scratch())


def _blur_shape(c: int, h: int, w: int, aa: int, stride_x: int, stride_y: int) -> Shape:
    """Output of the antialiasing blur conv: size 3 pad 1, or size 2 pad 0 for antialiasing=2."""
    size, pad = (2, 0) if aa == 2 else (3, 1)
    return (c, (h + 2 * pad - size) // stride_y + 1, (w + 2 * pad - size) // stride_x + 1)


def _blur(host: np.ndarray, out: np.ndarray, aa: int, stride_x: int, stride_y: int) -> None:
    size, pad = (2, 0) if aa == 2 else (3, 1)
    for b in range(host.shape[0]):
        in_steps(host.shape[1], lambda c0, c1: kernels.blur(host[b, c0:c1], size, stride_y,
                                                            stride_x, pad, out[b, c0:c1]))


# -- [convolutional] / [maxpool] options that add a step after the plain layer -----------------
@dataclass
class ConvolutionalPost(Convolutional):
    """[convolutional] with a cross-channel activation and/or antialiasing.

    convolutional_layer.c: the host convolution runs with stride 1, applies its activation
    (normalize_channels* act across channels per pixel), then `antialiasing` runs a fixed
    depthwise blur with the configured stride. Darknet counts only the host conv's BFLOPs.
    """

    norm_mode: int = -1  # -1: none, else the normalize_channels kernel mode
    antialiasing: int = 0
    blur_stride_x: int = 1
    blur_stride_y: int = 1

    def host_shape(self, prev: Shape) -> Shape:
        return Convolutional.infer(self, [], prev)

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        host = self.host_shape(prev)
        if not self.antialiasing:
            return host
        return _blur_shape(*host, self.antialiasing, self.blur_stride_x, self.blur_stride_y)

    def workspace(self, prev: Shape, out: Shape) -> int:
        return Convolutional.workspace(self, prev, self.host_shape(prev))

    def flops(self, prev: Shape, out: Shape) -> float:
        return Convolutional.flops(self, prev, self.host_shape(prev))

    def forward(self, x, outputs, out, ws):
        host = out
        if self.antialiasing:
            host = np.empty((x.shape[0], *self.host_shape(x.shape[1:])), _F)
        Convolutional.forward(self, x, outputs, host, ws)
        if self.norm_mode >= 0:
            for b in range(host.shape[0]):
                y = host[b].reshape(host.shape[1], -1)
                in_steps(y.shape[1], lambda i0, i1: kernels.normalize_channels(
                    y, self.norm_mode, i0, i1))  # pixels: each one's sum runs across channels
        if self.antialiasing:
            _blur(host, out, self.antialiasing, self.blur_stride_x, self.blur_stride_y)
        return out


@dataclass
class MaxPoolExt(MaxPool):
    """[maxpool] with maxpool_depth (a max across channel groups) or antialiasing (maxpool_layer.c).

    maxpool_depth=1: out[g] = max over input channels g, g+out_channels, ...; w and h are kept
    and size/stride are unused. antialiasing: stride 1 max, then the fixed blur with the stride.
    """

    maxpool_depth: int = 0
    out_channels: int = 1
    antialiasing: int = 0
    blur_stride_x: int = 1
    blur_stride_y: int = 1

    def host_shape(self, prev: Shape) -> Shape:
        if self.maxpool_depth:
            return (self.out_channels, prev[1], prev[2])
        return MaxPool.infer(self, [], prev)

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        host = self.host_shape(prev)
        if not self.antialiasing:
            return host
        return _blur_shape(*host, self.antialiasing, self.blur_stride_x, self.blur_stride_y)

    def flops(self, prev: Shape, out: Shape) -> float:
        host = self.host_shape(prev)
        return float(self.size * self.size * prev[0] * host[1] * host[2])

    def forward(self, x, outputs, out, ws):
        if self.maxpool_depth:
            c = x.shape[1]
            for g in range(self.out_channels):
                if g < c:
                    np.max(x[:, g :: self.out_channels], axis=1, out=out[:, g])
                else:
                    out[:, g] = -_FLT_MAX  # no input channel: darknet's -FLT_MAX start value
            return out
        host = np.empty((x.shape[0], *self.host_shape(x.shape[1:])), _F)
        MaxPool.forward(self, x, outputs, host, ws)
        _blur(host, out, self.antialiasing, self.blur_stride_x, self.blur_stride_y)
        return out


# -- pooling ------------------------------------------------------------------------------------
@dataclass
class AvgPool(Layer):
    """[avgpool]: global average, (c, h, w) -> (c, 1, 1) (avgpool_layer.c)."""

    KIND = "avg"
    section: Section
    inputs: list[int] = field(default_factory=list)

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> AvgPool:
        return cls(s)

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        return (prev[0], 1, 1)

    def forward(self, x, outputs, out, ws):
        n, c = x.shape[:2]
        for b in range(n):
            src, dst = x[b].reshape(c, -1), out[b].reshape(c)
            in_steps(c, lambda c0, c1: kernels.avgpool_global(src[c0:c1], dst[c0:c1]))
        return out


@dataclass
class LocalAvgPool(MaxPool):
    """[local_avgpool]: windowed mean over the taps inside the image (maxpool_layer.c, avgpool=1)."""

    KIND = "avg"

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> LocalAvgPool:
        stride = s.get_int("stride", 1)
        stride_x = s.get_int("stride_x", stride)
        stride_y = s.get_int("stride_y", stride)
        size = s.get_int("size", stride)
        padding = s.get_int("padding", size - 1)  # parser.c: total padding, not per side
        if size < 1:
            raise s.error("size", "must be >= 1")
        if stride_x < 1 or stride_y < 1:
            raise s.error("stride", "must be >= 1")
        if padding < 0:
            raise s.error("padding", "must be >= 0")
        return cls(s, size, stride_x, stride_y, padding)

    def flops(self, prev: Shape, out: Shape) -> float:
        return float(self.size * self.size * prev[0] * out[1] * out[2])

    def forward(self, x, outputs, out, ws):
        for b in range(x.shape[0]):
            in_steps(x.shape[1], lambda c0, c1: kernels.local_avgpool(
                x[b, c0:c1], self.size, self.stride_y, self.stride_x, self.padding,
                out[b, c0:c1]))
        return out


# -- attention: elementwise products with an earlier layer ----------------------------------------
@dataclass
class ScaleChannels(Layer):
    """[scale_channels]: layers[from] * previous, the previous being (c,1,1), or (1,h,w) with
    scale_wh=1; the output has the shape of layers[from] (scale_channels_layer.c)."""

    KIND = "scale"
    section: Section
    from_: int
    scale_wh: int
    activation: int
    inputs: list[int] = field(default_factory=list)

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> ScaleChannels:
        from_ = _layer_index(s, "from", s.get_int("from"), ctx)
        scale_wh = s.get_int("scale_wh", 0)
        act = _plain_activation(s, "linear")
        return cls(s, from_, scale_wh, act, [from_])

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        c, h, w = prev
        fc, fh, fw = shapes[self.from_]
        if not self.scale_wh and (h, w, c) != (1, 1, fc):
            raise self.error(
                "from", f"the previous layer is {w}x{h}x{c} but must be 1x1x{fc} to scale the "
                f"channels of layer {self.from_} ({fw}x{fh}x{fc})",
            )  # fmt: skip
        if self.scale_wh and (c, h, w) != (1, fh, fw):
            raise self.error(
                "scale_wh", f"the previous layer is {w}x{h}x{c} but must be {fw}x{fh}x1 to scale "
                f"layer {self.from_} per position",
            )  # fmt: skip
        return (fc, fh, fw)

    def forward(self, x, outputs, out, ws):
        src = outputs[self.from_]
        if self.scale_wh:
            np.multiply(src, x[:, :1], out=out)  # x: (N, 1, h, w) over every channel
        else:
            np.multiply(src, x, out=out)  # x: (N, c, 1, 1) per channel
        _activate_inplace(out, self.activation)
        return out


@dataclass
class Sam(Layer):
    """[sam]: spatial attention, layers[from] * previous elementwise, same shape (sam_layer.c)."""

    KIND = "sam"
    section: Section
    from_: int
    activation: int
    inputs: list[int] = field(default_factory=list)

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Sam:
        from_ = _layer_index(s, "from", s.get_int("from"), ctx)
        return cls(s, from_, _plain_activation(s, "linear"), [from_])

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        if shapes[self.from_] != prev:
            fc, fh, fw = shapes[self.from_]
            raise self.error(
                "from", f"layer {self.from_} is {fw}x{fh}x{fc} but the previous layer is "
                f"{prev[2]}x{prev[1]}x{prev[0]}; [sam] needs the same shape",
            )  # fmt: skip
        return prev

    def forward(self, x, outputs, out, ws):
        np.multiply(x, outputs[self.from_], out=out)
        _activate_inplace(out, self.activation)
        return out


# -- reshaping ------------------------------------------------------------------------------------
@dataclass
class Reorg3d(Layer):
    """[reorg3d]: space-to-depth, out[off*c + k, j, i] = in[k, j*s + off//s, i*s + off%s]
    (reorg_layer.c, reorg_cpu(..., forward=0) over the output's shape)."""

    KIND = "reorg"
    section: Section
    stride: int
    inputs: list[int] = field(default_factory=list)

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Reorg3d:
        stride = s.get_int("stride", 1)
        _refuse(s, "reverse", 0)
        if stride < 1:
            raise s.error("stride", "must be >= 1")
        return cls(s, stride)

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        c, h, w = prev
        s = self.stride
        if h % s or w % s:
            raise self.error("stride", f"must divide the {w}x{h} input")
        return (c * s * s, h // s, w // s)

    def forward(self, x, outputs, out, ws):
        s = self.stride
        c = x.shape[1]
        for off in range(s * s):
            out[:, off * c : (off + 1) * c] = x[:, :, off // s :: s, off % s :: s]
        return out


@dataclass
class Crop(Layer):
    """[crop]: the centre crop_height x crop_width, then x*2-1 unless noadjust (crop_layer.c).

    At inference there is no random shift or flip. At another input size darknet's resize keeps
    the ratio crop_height/h for both sides (resize_crop_layer).
    """

    KIND = "crop"
    section: Section
    crop_height: int
    crop_width: int
    noadjust: int
    built: tuple[int, int] = (0, 0)
    inputs: list[int] = field(default_factory=list)

    IGNORED = frozenset({"flip", "angle", "saturation", "exposure", "shift"})

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Crop:
        crop_height = s.get_int("crop_height", 1)
        crop_width = s.get_int("crop_width", 1)
        noadjust = s.get_int("noadjust", 0)
        if crop_height < 1 or crop_width < 1:
            raise s.error("crop_height", "crop_height and crop_width must be >= 1")
        return cls(s, crop_height, crop_width, noadjust, ctx.prev[1:])

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        c, h, w = prev
        if (h, w) == self.built:
            oh, ow = self.crop_height, self.crop_width
        else:
            scale = _F(self.crop_height) / _F(self.built[0])
            oh, ow = int(scale * _F(h)), int(scale * _F(w))
        if not (1 <= oh <= h and 1 <= ow <= w):
            raise self.error(
                "crop_height", f"a {ow}x{oh} crop does not fit inside the {w}x{h} input"
            )
        return (c, oh, ow)

    def forward(self, x, outputs, out, ws):
        h, w = x.shape[2:]
        oh, ow = out.shape[2:]
        dh, dw = (h - oh) // 2, (w - ow) // 2
        scale, trans = (_F(1), _F(0)) if self.noadjust else (_F(2), _F(-1))
        np.multiply(x[:, :, dh : dh + oh, dw : dw + ow], scale, out=out)
        out += trans
        return out


# -- classifier heads and the like ----------------------------------------------------------------
@dataclass
class Softmax(Layer):
    """[softmax]: softmax over each of `groups` contiguous parts of the flat input, with
    temperature (softmax_layer.c, blas.c softmax_cpu). The shape is kept."""

    KIND = "softmax"
    section: Section
    groups: int
    temperature: float
    inputs: list[int] = field(default_factory=list)

    IGNORED = frozenset({"noloss"})

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Softmax:
        groups = s.get_int("groups", 1)
        temperature = s.get_float("temperature", 1.0)
        _refuse(s, "tree", "", "softmax trees (hierarchical classes, yolo9000) are not supported")
        if s.has("spatial") and s.get_float("spatial") != 0:
            raise s.error("spatial", "spatial softmax (darknet's GPU path only) is not supported")
        if groups < 1:
            raise s.error("groups", "must be >= 1")
        return cls(s, groups, temperature)

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        n = prev[0] * prev[1] * prev[2]
        if n % self.groups:
            raise self.error("groups", f"must divide the {n} inputs")
        return prev

    def forward(self, x, outputs, out, ws):
        temp = _F(self.temperature)
        for b in range(x.shape[0]):
            kernels.softmax_groups(x[b].reshape(self.groups, -1), temp,
                                   out[b].reshape(self.groups, -1))  # fmt: skip
        return out


@dataclass
class Connected(Layer):
    """[connected]: y = act(W x + b) over the flattened input, W (output, inputs); with
    batch_normalize the rolling statistics normalise W x before the bias (connected_layer.c).
    A weights file whose major or minor version exceeds 1000 stores W transposed (parser.c)."""

    KIND = "connected"
    section: Section
    output: int
    activation: int
    batch_normalize: bool
    n_in: int
    transpose: bool = False
    weights: np.ndarray | None = None  # (output, n_in)
    biases: np.ndarray | None = None
    bn: tuple | None = None  # (scales, rolling_mean, rolling_variance)
    inputs: list[int] = field(default_factory=list)

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Connected:
        output = s.get_int("output", 1)
        act = _plain_activation(s, "logistic")  # parser.c parse_connected default
        bn = bool(s.get_int("batch_normalize", 0))
        if output < 1:
            raise s.error("output", "must be >= 1")
        c, h, w = ctx.prev
        return cls(s, output, act, bn, c * h * w)

    @property
    def filters(self) -> int:
        return self.output

    @property
    def fan_in(self) -> int:
        return self.n_in

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        n = prev[0] * prev[1] * prev[2]
        if n != self.n_in:
            raise self.error(None, f"input has {n} values, the weights were built for {self.n_in}")
        return (self.output, 1, 1)

    def set_header(self, header) -> None:
        self.transpose = header.transpose

    def params(self) -> list[tuple[str, int]]:
        out = [("biases", self.output), ("weights", self.output * self.n_in)]
        if self.batch_normalize:
            n = self.output
            out += [("scales", n), ("rolling_mean", n), ("rolling_variance", n)]
        return out

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        w = arrays["weights"]
        if self.transpose:  # parser.c transpose_matrix(weights, inputs, outputs)
            w = w.reshape(self.n_in, self.output).T
        self.weights = np.ascontiguousarray(w.reshape(self.output, self.n_in), dtype=_F)
        self.biases = arrays["biases"].astype(_F)
        if self.batch_normalize:
            self.bn = tuple(arrays[k].astype(_F) for k in
                            ("scales", "rolling_mean", "rolling_variance"))  # fmt: skip

    def forward(self, x, outputs, out, ws):
        y = out.reshape(x.shape[0], self.output)
        np.matmul(x.reshape(x.shape[0], -1), self.weights.T, out=y)
        if self.batch_normalize:
            scales, mean, var = self.bn
            # blas.c normalize_cpu: (x - mean) / sqrt(var + .00001f), sqrt in double
            std = np.sqrt((var + _F(0.00001)).astype(np.float64))
            y[...] = (y - mean).astype(np.float64) / std
            y *= scales
        y += self.biases
        _activate_inplace(out, self.activation)
        return out


@dataclass
class BatchNorm(Layer):
    """[batchnorm]: (x - mean) / sqrt(var + .00001f) * scale + bias with the rolling statistics
    (batchnorm_layer.c forward_batchnorm_layer, test mode)."""

    KIND = "batchnorm"
    section: Section
    c: int
    arrays: dict | None = None
    inputs: list[int] = field(default_factory=list)

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> BatchNorm:
        return cls(s, ctx.prev[0])

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        if prev[0] != self.c:
            raise self.error(
                None, f"input has {prev[0]} channels, the weights were built for {self.c}"
            )
        return prev

    def params(self) -> list[tuple[str, int]]:
        return [(k, self.c) for k in ("biases", "scales", "rolling_mean", "rolling_variance")]

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = {k: v.astype(_F).reshape(1, -1, 1, 1) for k, v in arrays.items()}

    def forward(self, x, outputs, out, ws):
        a = self.arrays
        std = np.sqrt((a["rolling_variance"] + _F(0.00001)).astype(np.float64))
        out[...] = (x - a["rolling_mean"]).astype(np.float64) / std
        out *= a["scales"]
        out += a["biases"]
        return out


@dataclass
class Implicit(Layer):
    """[implicit]: a learned constant of shape (filters, atoms, 1), whatever the input
    (representation_layer.c). YOLOR's add/multiply use it through [shortcut]/[scale_channels]."""

    KIND = "implicit"
    section: Section
    filters: int
    atoms: int
    weights: np.ndarray | None = None
    inputs: list[int] = field(default_factory=list)

    IGNORED = frozenset({"mean", "std"})  # initialisation only

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Implicit:
        filters = s.get_int("filters", 128)
        atoms = s.get_int("atoms", 1)
        if filters < 1 or atoms < 1:
            raise s.error("filters", "filters and atoms must be >= 1")
        return cls(s, filters, atoms)

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        return (self.filters, self.atoms, 1)

    def params(self) -> list[tuple[str, int]]:
        return [("weights", self.filters * self.atoms)]

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights = arrays["weights"].astype(_F).reshape(self.filters, self.atoms, 1)

    def forward(self, x, outputs, out, ws):
        out[...] = self.weights
        return out


@dataclass
class Activation(Layer):
    """[activation]: activate_array() on the previous output (activation_layer.c)."""

    KIND = "activation"
    section: Section
    activation: int
    inputs: list[int] = field(default_factory=list)

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Activation:
        return cls(s, _plain_activation(s, "linear"))

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        return prev

    def forward(self, x, outputs, out, ws):
        out[...] = x
        _activate_inplace(out, self.activation)
        return out


@dataclass
class Empty(Layer):
    """[empty] / [silence]: the identity (parser.c EMPTY); [cost]: only computes a training loss,
    so the network's output is the layer before it (network.c get_network_output)."""

    PASSTHROUGH = True
    section: Section
    inputs: list[int] = field(default_factory=list)

    IGNORED = frozenset({"type", "scale", "ratio", "noobject_scale", "thresh"})  # [cost]

    @property
    def KIND(self) -> str:
        return self.section.kind

    @property
    def LOSS_ONLY(self) -> bool:
        return self.section.kind == "cost"

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Empty:
        return cls(s)

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        return prev

    def forward(self, x, outputs, out, ws):
        return x


@dataclass
class Contrastive(Layer):
    """[contrastive]: a training loss on a [yolo] head's embeddings (softmax_layer.c
    forward_contrastive_layer returns at once outside training, leaving its calloc'ed output
    at 0). Here: zeros of the input's shape, which no layer reads."""

    KIND = "contrastive"
    section: Section
    inputs: list[int] = field(default_factory=list)

    IGNORED = frozenset(
        "classes temperature cls_normalizer max_delta contrastive_neg_max".split()
    )

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Contrastive:
        value = s.get_int("yolo_layer", 0)
        # parse_contrastive: 0 (the default) points nowhere and darknet dereferences NULL
        index = _layer_index(s, "yolo_layer", value, ctx) if value else -1
        if index < 0 or ctx.sections[index + 1].kind != "yolo":
            raise s.error("yolo_layer", "must point to a [yolo] layer, as darknet requires")
        return cls(s)

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        return prev

    def forward(self, x, outputs, out, ws):
        out[...] = 0
        return out


@dataclass
class Normalization(Layer):
    """[lrn] / [normalization]: local response normalisation across channels
    (normalization_layer.c), with darknet's running window: norms[0] sums channels
    0..size/2-1, then each step subtracts channel k-(size-1)/2-1 and adds channel k+size/2."""

    KIND = "lrn"
    section: Section
    size: int
    alpha: float
    beta: float
    kappa: float
    inputs: list[int] = field(default_factory=list)

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Normalization:
        size = s.get_int("size", 5)
        alpha = s.get_float("alpha", 0.0001)
        beta = s.get_float("beta", 0.75)
        kappa = s.get_float("kappa", 1.0)
        if size < 1:
            raise s.error("size", "must be >= 1")
        return cls(s, size, alpha, beta, kappa)

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        return prev

    def forward(self, x, outputs, out, ws):
        c = x.shape[1]
        alpha = _F(self.alpha)
        sq = (x.astype(np.float64) ** 2).astype(_F)  # pow_cpu: pow() in double
        norms = np.empty_like(x)
        norms[:, 0] = _F(self.kappa)
        for k in range(self.size // 2):
            if k < c:
                norms[:, 0] += alpha * sq[:, k]
        for k in range(1, c):
            norms[:, k] = norms[:, k - 1]
            prev, nxt = k - (self.size - 1) // 2 - 1, k + self.size // 2
            if prev >= 0:
                norms[:, k] += -alpha * sq[:, prev]
            if nxt < c:
                norms[:, k] += alpha * sq[:, nxt]
        out[...] = (norms.astype(np.float64) ** -np.float64(_F(self.beta))).astype(_F)
        out *= x
        return out


@dataclass
class Local(Layer):
    """[local]: a convolution with separate weights at every output position (local_layer.c).

    Output positions: (h - size)/stride + 1 without pad, (h - 1)/stride + 1 with it, and im2col
    pads by `pad` pixels, so darknet is consistent only for pad=0 or size = 2*pad+1.
    """

    KIND = "local"
    section: Section
    filters: int
    size: int
    stride: int
    pad: int
    activation: int
    c: int
    built: tuple[int, int]  # output positions the weights were made for
    weights: np.ndarray | None = None  # (locations, filters, c*size*size)
    biases: np.ndarray | None = None
    inputs: list[int] = field(default_factory=list)

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx) -> Local:
        filters = s.get_int("filters", 1)
        size = s.get_int("size", 1)
        stride = s.get_int("stride", 1)
        pad = s.get_int("pad", 0)  # local_layer.c uses it as pixels, unlike [convolutional]
        act = _plain_activation(s, "logistic")
        if filters < 1 or size < 1 or stride < 1 or pad < 0:
            raise s.error("size", "filters, size and stride must be >= 1, pad >= 0")
        if pad and size != 2 * pad + 1:
            raise s.error(
                "pad", f"darknet's output size and im2col disagree unless size = 2*pad+1 ({size})"
            )
        c, h, w = ctx.prev
        layer = cls(s, filters, size, stride, pad, act, c, (0, 0))
        layer.built = layer._positions(h, w)
        return layer

    @property
    def stride_x(self) -> int:  # the layer table's "size x size/ stride" column
        return self.stride

    stride_y = stride_x

    @property
    def fan_in(self) -> int:
        return self.c * self.size * self.size

    def _positions(self, h: int, w: int) -> tuple[int, int]:
        d = 1 if self.pad else self.size
        return ((h - d) // self.stride + 1, (w - d) // self.stride + 1)

    def infer(self, shapes: list[Shape], prev: Shape) -> Shape:
        if prev[0] != self.c or self._positions(*prev[1:]) != self.built:
            raise self.error(None, "[local] weights are per position: the input size is fixed")
        return (self.filters, *self.built)

    def params(self) -> list[tuple[str, int]]:
        loc = self.built[0] * self.built[1]
        k = self.c * self.size * self.size
        return [("biases", self.filters * loc), ("weights", loc * self.filters * k)]

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        loc = self.built[0] * self.built[1]
        self.weights = arrays["weights"].astype(_F, copy=False).reshape(loc, self.filters, -1)
        self.biases = arrays["biases"].astype(_F).reshape(self.filters, loc)

    def forward(self, x, outputs, out, ws):
        oh, ow = self.built
        k = self.c * self.size * self.size
        cols = np.empty((k, oh * ow), _F)
        for b in range(x.shape[0]):
            h, w = x.shape[2:]
            kernels.im2col(x[b].reshape(self.c, h * w), h, w, self.size, self.stride, self.stride,
                           self.pad, 1, oh, ow, cols)  # fmt: skip
            y = np.einsum("lnk,kl->nl", self.weights, cols).astype(_F)  # (filters, locations)
            out[b] = (self.biases + y).reshape(self.filters, oh, ow)
        _activate_inplace(out, self.activation)
        return out


# -- parsed by darknet, refused here --------------------------------------------------------------
_REFUSED_WHY = {
    # YOLOR's own sections (WongKinYiu/yolor); AlexeyAB darknet has [implicit] instead
    **{k: f"[{k}] is YOLOR's, not a darknet section (darknet has [implicit])" for k in
       ("implicit_add", "implicit_mul", "control_channels", "shift_channels")},
    **{k: "recurrent layers are not supported" for k in
       ("rnn", "gru", "lstm", "crnn", "conv_lstm", "history")},
}  # fmt: skip


class Refused(Layer):
    """A section darknet parses that pydarknet does not run: from_cfg raises a CfgError."""

    REFUSED = True

    @classmethod
    def from_cfg(cls, s: Section, ctx: Ctx):
        raise s.error(None, _REFUSED_WHY[s.kind])


MORE_LAYERS = {
    "avgpool": AvgPool, "avg": AvgPool, "local_avgpool": LocalAvgPool, "local_avg": LocalAvgPool,
    "scale_channels": ScaleChannels, "sam": Sam, "reorg3d": Reorg3d, "crop": Crop,
    "softmax": Softmax, "soft": Softmax, "connected": Connected, "conn": Connected,
    "batchnorm": BatchNorm, "implicit": Implicit, "activation": Activation,
    "empty": Empty, "silence": Empty, "cost": Empty, "lrn": Normalization,
    "normalization": Normalization, "local": Local, "contrastive": Contrastive,
    **{kind: Refused for kind in _REFUSED_WHY},
}  # fmt: skip
