"""A network as an ONNX graph, for `pydarknet bench --vs onnxruntime`: the same weights (batch
norm folded, as pydarknet runs them), the same raw outputs as Network.forward.

Covers the layers of the YOLO families (convolutional, route with groups, shortcut, maxpool,
upsample, dropout, the heads) and the activations ONNX has an operator for. Anything else is a
DarknetError naming the layer, never a graph that computes something else. Needs the `onnx`
package (pip install onnx onnxruntime).
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .errors import DarknetError
from .layers import HEADS, Convolutional, Dropout, MaxPool, Route, Shortcut, Upsample

OPSET = 18  # Mish is in opset 18


def _graph_maker():
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise DarknetError("ONNX export needs the onnx package (pip install onnx)") from None
    return TensorProto, helper, numpy_helper


def export(net, height: int, width: int) -> bytes:
    """The loaded network at height x width, any batch size, as a serialized ONNX model whose
    outputs are Network.forward's (the raw map fed into each head), in the same order."""
    TensorProto, helper, numpy_helper = _graph_maker()
    if not net.loaded:
        raise DarknetError("no weights loaded; call load_weights() first")
    shapes = net.infer_shapes(height, width)
    nodes, weights = [], []

    def constant(name: str, value) -> str:
        weights.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    names: list[str] = []
    prev = "input"
    for i, layer in enumerate(net.layers):
        if not net.active[i]:
            names.append("")
            continue
        out = f"layer{i}"
        where = f"layer {i} [{layer.section.kind}]"
        kind = type(layer)
        if kind is Convolutional:
            n, k = layer.filters, layer.size
            w = layer.weights.reshape(n, layer.c // layer.groups, k, k)
            p = layer.padding
            raw = node("Conv", [prev, constant(f"{out}.w", w), constant(f"{out}.b", layer.biases)],
                       f"{out}.conv", kernel_shape=[k, k], strides=[layer.stride_y, layer.stride_x],
                       pads=[p, p, p, p], dilations=[layer.dilation] * 2,
                       group=layer.groups)  # fmt: skip
            _activation(node, constant, raw, layer.activation, out, where)
        elif kind is MaxPool:
            lo = layer.padding // 2  # maxpool_layer.c: origin -padding/2, -FLT_MAX outside
            hi = layer.padding - lo
            node("MaxPool", [prev], out, kernel_shape=[layer.size] * 2,
                 strides=[layer.stride_y, layer.stride_x], pads=[lo, lo, hi, hi])  # fmt: skip
        elif kind is Route:
            parts = []
            for j in layer.inputs:
                part = shapes[j][0] // layer.groups
                if layer.groups == 1:
                    parts.append(names[j])
                    continue
                lo = part * layer.group_id
                parts.append(node("Slice", [names[j], constant(f"{out}.{j}.lo", np.array([lo])),
                                            constant(f"{out}.{j}.hi", np.array([lo + part])),
                                            constant(f"{out}.{j}.axis", np.array([1]))],
                                  f"{out}.{j}"))  # fmt: skip
            node("Concat" if len(parts) > 1 else "Identity", parts, out,
                 **({"axis": 1} if len(parts) > 1 else {}))  # fmt: skip
        elif kind is Shortcut:
            same = all(shapes[j] == shapes[i] for j in layer.inputs)
            if layer.weights_type != "none" or not same:
                raise DarknetError(f"{where}: only an unweighted sum of same-shape inputs has an "
                                   f"ONNX form here")  # fmt: skip
            total = prev
            for j in layer.inputs:
                total = node("Add", [total, names[j]], f"{out}.add{j}")
            _activation(node, constant, total, layer.activation, out, where)
        elif kind is Upsample and layer.stride > 0:
            s = float(layer.stride)
            scales = constant(f"{out}.scales", np.array([1, 1, s, s], np.float32))
            up = node("Resize", [prev, "", scales], f"{out}.up", mode="nearest")
            node("Mul", [up, constant(f"{out}.scale", np.float32(layer.scale))], out)
        elif kind is Dropout or isinstance(layer, HEADS):
            node("Identity", [prev], out)  # a head's output is the raw map fed into it
        else:
            raise DarknetError(f"{where}: this layer has no ONNX form here")
        names.append(out)
        prev = out
    c = net.channels
    graph = helper.make_graph(
        nodes, "pydarknet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", c, height, width])],
        [helper.make_tensor_value_info(names[i], TensorProto.FLOAT, None)
         for i in net.output_layers],
        weights,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by ONNX Runtime releases from 1.10 on
    return model.SerializeToString()


# ONNX operators for darknet activations: f(x) as a node (or two) on x
_UNARY = {kernels.RELU: ("Relu", {}), kernels.LOGISTIC: ("Sigmoid", {}),
          kernels.MISH: ("Mish", {}), kernels.TANH: ("Tanh", {}),
          kernels.ELU: ("Elu", {"alpha": 1.0}),
          # activations.h selu_activate: 1.0507 * (x >= 0 ? x : 1.6732 * (exp(x) - 1))
          kernels.SELU: ("Selu", {"alpha": 1.6732, "gamma": 1.0507})}  # fmt: skip


def _activation(node, constant, x: str, code: int, out: str, where: str) -> str:
    if code == kernels.LINEAR:
        return node("Identity", [x], out)
    if code == kernels.LEAKY:  # activations.h leaky_activate: x > 0 ? x : .1 * x
        return node("LeakyRelu", [x], out, alpha=0.1)
    if code == kernels.SWISH:
        return node("Mul", [x, node("Sigmoid", [x], f"{out}.sigmoid")], out)
    if code == kernels.RELU6:
        return node("Clip", [x, constant(f"{out}.lo", np.float32(0)),
                             constant(f"{out}.hi", np.float32(6))], out)  # fmt: skip
    if code in _UNARY:
        op, attrs = _UNARY[code]
        return node(op, [x], out, **attrs)
    raise DarknetError(f"{where}: its activation has no ONNX form here")
