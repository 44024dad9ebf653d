"""Translate a small convolutional ONNX graph (NCHW) node by node into a TensorFlow function (NHWC).

Used by the build tools of models whose source is an ONNX file (``build_centerface``,
``build_text_det``); nothing under ``edged/`` imports it. onnx2tf is not used: its pins would
downgrade the build environment, and these graphs need a dozen ops.

:func:`load_graph` reads the nodes and weights (initializers and ``Constant`` nodes), folds each
BatchNormalization into the convolution before it, evaluates nodes whose inputs are all constant
(``Reshape`` of a bias) and rewrites the hard-swish pattern ``x * clip(x + 3, 0, 6) / 6`` into one
``HardSwish`` node. :func:`translate` emits hard-swish as ``relu6(x + 3) * (x * 1/6)`` and
HardSigmoid as ``relu6(6 a x + 6 b) * 1/6``: TensorFlow Lite's converter would otherwise fuse them
into ``HARD_SWISH`` and ``RELU_0_TO_1``, which XNNPACK does not run in int8, so an int8 model would
fall back to reference kernels between XNNPACK pieces (``docs/TUNING.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def attrs(node: Any) -> dict[str, Any]:
    """A node's attributes as a name -> Python value dict."""
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _producers_and_users(nodes: list[Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """Each tensor's producing node, and how many node inputs read each tensor."""
    producer = {out: n for n in nodes for out in n.output}
    users: dict[str, int] = {}
    for n in nodes:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
    return producer, users


def _fold_batch_norms(nodes: list[Any], weights: dict[str, np.ndarray]) -> list[Any]:
    """Nodes with each BatchNormalization that alone follows a (transposed) conv folded into its weights."""
    producer, users = _producers_and_users(nodes)
    kept = []
    for n in nodes:
        prev = producer.get(n.input[0])
        if n.op_type != "BatchNormalization" or prev is None or prev.op_type not in ("Conv", "ConvTranspose") or users[n.input[0]] != 1:
            kept.append(n)
            continue
        gamma, beta, mean, var = (weights[i] for i in n.input[1:5])
        k = gamma / np.sqrt(var + attrs(n).get("epsilon", 1e-5))
        w = weights[prev.input[1]]
        bias = weights[prev.input[2]] if len(prev.input) > 2 else np.zeros_like(k)
        axis = 1 if prev.op_type == "ConvTranspose" else 0  # ConvTranspose weights are (in, out, kh, kw)
        shape = [1, 1, 1, 1]
        shape[axis] = -1
        weights[prev.input[1]] = w * k.reshape(shape)
        bname = prev.input[1] + ".folded_bias"
        weights[bname] = (bias - mean) * k + beta
        del prev.input[2:]
        prev.input.append(bname)
        prev.output[0] = n.output[0]
    return kept


def _fold_constants(nodes: list[Any], weights: dict[str, np.ndarray]) -> list[Any]:
    """Nodes left after evaluating the ``Reshape`` nodes whose inputs are all weights."""
    kept = []
    for n in nodes:
        if n.op_type == "Reshape" and all(i in weights for i in n.input):
            weights[n.output[0]] = weights[n.input[0]].reshape(weights[n.input[1]].astype(np.int64))
        else:
            kept.append(n)
    return kept


def _scalar(weights: dict[str, np.ndarray], name: str) -> float | None:
    """The value of a one-element weight, else None."""
    w = weights.get(name)
    return float(w.reshape(-1)[0]) if w is not None and w.size == 1 else None


def _fuse_hard_swish(nodes: list[Any], weights: dict[str, np.ndarray]) -> list[Any]:
    """Nodes with each ``Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6)`` replaced by one ``HardSwish`` node."""
    import onnx

    producer, users = _producers_and_users(nodes)
    dropped: set[int] = set()
    swaps: dict[int, Any] = {}
    for n in nodes:
        if n.op_type != "Div" or _scalar(weights, n.input[1]) != 6.0:
            continue
        mul = producer.get(n.input[0])
        if mul is None or mul.op_type != "Mul" or users[mul.output[0]] != 1:
            continue
        for x, other in ((mul.input[0], mul.input[1]), (mul.input[1], mul.input[0])):
            clip = producer.get(other)
            if clip is None or clip.op_type != "Clip" or users[clip.output[0]] != 1:
                continue
            lo, hi = (_scalar(weights, i) for i in clip.input[1:3]) if len(clip.input) == 3 else (None, None)
            add = producer.get(clip.input[0])
            if (lo, hi) != (0.0, 6.0) or add is None or add.op_type != "Add" or users[add.output[0]] != 1:
                continue
            if sorted([add.input[0] == x, _scalar(weights, add.input[1]) == 3.0]) != [True, True]:
                continue
            dropped.update({id(mul), id(clip), id(add)})
            swaps[id(n)] = onnx.helper.make_node("HardSwish", [x], [n.output[0]], name=n.name + ".hard_swish")
            break
    return [swaps.get(id(n), n) for n in nodes if id(n) not in dropped]


def load_graph(path: Path) -> tuple[list[Any], dict[str, np.ndarray]]:
    """ONNX nodes and float32 weights, batch norms folded, constant reshapes evaluated, hard-swishes fused."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes = []
    for n in graph.node:
        if n.op_type == "Constant":
            weights[n.output[0]] = numpy_helper.to_array(attrs(n)["value"])
        else:
            nodes.append(n)
    weights = {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in weights.items()}
    nodes = _fold_constants(nodes, weights)
    nodes = _fold_batch_norms(nodes, weights)
    return _fuse_hard_swish(nodes, weights), weights


def _nhwc(value: Any) -> Any:
    """A 4-D NCHW weight as NHWC (for broadcasting against NHWC tensors); tensors and scalars unchanged."""
    if isinstance(value, np.ndarray):
        return value.transpose(0, 2, 3, 1) if value.ndim == 4 else value
    return value


def _conv(tf: Any, x: Any, w: np.ndarray, b: np.ndarray | None, a: dict[str, Any], macs: list[int] | None) -> Any:
    """ONNX Conv (plain or depthwise) on an NHWC tensor."""
    o, i_g, kh, kw = w.shape
    s = a.get("strides", [1, 1])
    t, left, bottom, right = a.get("pads", [0, 0, 0, 0])
    if any((t, left, bottom, right)):
        x = tf.pad(x, [[0, 0], [t, bottom], [left, right], [0, 0]])
    g = a.get("group", 1)
    if g == 1:
        y = tf.nn.conv2d(x, tf.constant(w.transpose(2, 3, 1, 0)), [1, s[0], s[1], 1], "VALID")
    elif g == o and i_g == 1 and int(x.shape[-1]) == g:
        y = tf.nn.depthwise_conv2d(x, tf.constant(w.transpose(2, 3, 0, 1)), [1, s[0], s[1], 1], "VALID")
    else:
        raise NotImplementedError(f"grouped Conv with group={g}")
    if b is not None:
        y = tf.nn.bias_add(y, tf.constant(b))
    if macs is not None:
        macs.append(int(np.prod(y.shape[1:])) * i_g * kh * kw)
    return y


def _conv_transpose(tf: Any, x: Any, w: np.ndarray, b: np.ndarray | None, a: dict[str, Any], macs: list[int] | None) -> Any:
    """ONNX ConvTranspose with kernel == stride, no pads, one group, on an NHWC tensor."""
    ci, co, kh, kw = w.shape  # (in, out, kh, kw)
    s = a.get("strides", [1, 1])
    if a.get("group", 1) != 1 or any(a.get("pads", [0, 0, 0, 0])) or [kh, kw] != list(s):
        raise NotImplementedError("only ConvTranspose with kernel == stride, no pads, group 1")
    _, hh, ww, _ = x.shape
    y = tf.nn.conv2d_transpose(x, tf.constant(w.transpose(2, 3, 1, 0)), [1, hh * s[0], ww * s[1], co], [1, s[0], s[1], 1], "VALID")
    if b is not None:
        y = tf.nn.bias_add(y, tf.constant(b))
    if macs is not None:
        macs.append(int(hh * ww) * ci * co * kh * kw)
    return y


def _resize(tf: Any, x: Any, ins: list[Any], a: dict[str, Any]) -> Any:
    """ONNX Resize by integer scales in nearest mode (asymmetric, floor): a nearest-neighbour upsample."""
    scales = ins[2] if len(ins) > 2 and isinstance(ins[2], np.ndarray) and ins[2].size == 4 else None
    if scales is None or a.get("mode", b"nearest") != b"nearest" or list(scales[:2]) != [1.0, 1.0]:
        raise NotImplementedError("only nearest Resize by constant spatial scales")
    _, h, w, _ = x.shape
    return tf.image.resize(x, [int(h * scales[2]), int(w * scales[3])], method="nearest")


def translate(nodes: list[Any], weights: dict[str, np.ndarray], input_name: str, output_names: list[str],
              macs: list[int] | None = None) -> Callable[[Any], tuple[Any, ...]]:
    """A function NHWC float image -> NHWC outputs (in ``output_names`` order) that runs the nodes as tf ops (MACs per conv appended to ``macs``)."""
    import tensorflow as tf

    def run(x: Any) -> tuple[Any, ...]:
        env: dict[str, Any] = {input_name: x}
        for n in nodes:
            a = attrs(n)
            ins = [env[i] if i in env else weights.get(i) for i in n.input]
            op = n.op_type
            if op == "Conv":
                y = _conv(tf, ins[0], ins[1], ins[2] if len(ins) > 2 else None, a, macs)
            elif op == "ConvTranspose":
                y = _conv_transpose(tf, ins[0], ins[1], ins[2] if len(ins) > 2 else None, a, macs)
            elif op == "BatchNormalization":
                gamma, beta, mean, var = ins[1:5]
                k = gamma / np.sqrt(var + a.get("epsilon", 1e-5))
                y = ins[0] * tf.constant(k) + tf.constant(beta - mean * k)
            elif op == "Relu":
                y = tf.nn.relu(ins[0])
            elif op == "Sigmoid":
                y = tf.sigmoid(ins[0])
            elif op == "HardSwish":
                y = tf.nn.relu6(ins[0] + 3.0) * (ins[0] * (1.0 / 6.0))
            elif op == "HardSigmoid":
                alpha, beta = a.get("alpha", 0.2), a.get("beta", 0.5)
                y = tf.nn.relu6(ins[0] * (6.0 * alpha) + 6.0 * beta) * (1.0 / 6.0)
            elif op in ("Add", "Mul", "Div"):
                p, q = (_nhwc(v) for v in ins)
                y = p + q if op == "Add" else p * q if op == "Mul" else p / q
            elif op == "GlobalAveragePool":
                y = tf.reduce_mean(ins[0], axis=[1, 2], keepdims=True)
            elif op == "Resize":
                y = _resize(tf, ins[0], ins, a)
            elif op == "Concat":
                if a.get("axis") != 1:
                    raise NotImplementedError("only Concat over channels")
                y = tf.concat(ins, axis=3)
            else:
                raise NotImplementedError(f"ONNX op {op} is not translated")
            env[n.output[0]] = y
        return tuple(env[k] for k in output_names)

    return run
