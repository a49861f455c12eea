"""Built-in networks for live measurement, made with onnx.helper (random weights: the cost is the same as
with trained ones). Each builder returns a serialized ONNX model whose first input dimension is the batch."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def build_mlp(
    input_dim: int = 512, hidden: Sequence[int] = (1024, 1024, 1024), output_dim: int = 10, seed: int = 0
) -> bytes:
    """Serialized ONNX model of an MLP (Gemm + Relu layers, softmax output), batch dimension dynamic."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    dims = [input_dim, *hidden, output_dim]
    nodes, inits = [], []
    current = "x"
    for i, (d_in, d_out) in enumerate(zip(dims, dims[1:])):
        w = (rng.standard_normal((d_in, d_out)) / np.sqrt(d_in)).astype(np.float32)
        b = np.zeros(d_out, dtype=np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        out = f"h{i}"
        nodes.append(helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [out]))
        current = out
        if i < len(dims) - 2:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            current = f"r{i}"
    nodes.append(helper.make_node("Softmax", [current], ["y"], axis=1))
    graph = helper.make_graph(
        nodes,
        "servesim_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", input_dim])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", output_dim])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="servesim")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def describe_mlp(input_dim: int = 512, hidden: Sequence[int] = (1024, 1024, 1024), output_dim: int = 10) -> str:
    dims = [input_dim, *hidden, output_dim]
    params = sum(a * b + b for a, b in zip(dims, dims[1:]))
    return (
        f"MLP {'-'.join(map(str, dims))} fp32, {params / 1e6:.2f} M parameters, random weights (built with onnx.helper)"
    )


def build_encoder(
    layers: int = 12, hidden: int = 768, heads: int = 12, ffn: int = 3072, seq_len: int = 128, seed: int = 0
) -> bytes:
    """A BERT-base-shaped transformer encoder (defaults: 12 layers, hidden 768, 12 heads, FFN 3072) over
    `seq_len` tokens; input: embeddings [batch, seq_len, hidden] (the embedding lookup is left out), output
    the last hidden states. Post-LN blocks: MatMul QKV, scaled softmax attention, output projection,
    Add + LayerNormalization, FFN with exact (erf) GELU, Add + LayerNormalization."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if hidden % heads:
        raise ValueError("hidden must be a multiple of heads")
    rng = np.random.default_rng(seed)
    head_dim = hidden // heads
    inits = []
    nodes = []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(array, name))
        return name

    def weight(name: str, shape: tuple[int, ...]) -> str:
        return const(name, (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32))

    def node(op: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    split_shape = const("split_shape", np.array([0, seq_len, heads, head_dim], dtype=np.int64))
    merge_shape = const("merge_shape", np.array([0, seq_len, hidden], dtype=np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(head_dim), dtype=np.float32))
    sqrt2 = const("sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
    one = const("one", np.array(1.0, dtype=np.float32))
    half = const("half", np.array(0.5, dtype=np.float32))
    x = "x"
    for i in range(layers):
        p = f"l{i}_"
        heads_of = {}
        for part in ("q", "k", "v"):
            proj = node("MatMul", [x, weight(p + part, (hidden, hidden))], p + part + "_proj")
            proj = node("Add", [proj, const(p + part + "_b", np.zeros(hidden, np.float32))], p + part + "_biased")
            split = node("Reshape", [proj, split_shape], p + part + "_split")
            perm = [0, 2, 3, 1] if part == "k" else [0, 2, 1, 3]
            heads_of[part] = node("Transpose", [split], p + part + "_heads", perm=perm)
        scores = node("MatMul", [heads_of["q"], heads_of["k"]], p + "scores")
        scores = node("Mul", [scores, scale], p + "scaled")
        probs = node("Softmax", [scores], p + "probs", axis=-1)
        context = node("MatMul", [probs, heads_of["v"]], p + "context")
        context = node("Transpose", [context], p + "context_t", perm=[0, 2, 1, 3])
        context = node("Reshape", [context, merge_shape], p + "context_m")
        attn = node("MatMul", [context, weight(p + "o", (hidden, hidden))], p + "attn")
        x = node("Add", [attn, x], p + "res1")
        x = node(
            "LayerNormalization",
            [x, const(p + "ln1_g", np.ones(hidden, np.float32)), const(p + "ln1_b", np.zeros(hidden, np.float32))],
            p + "ln1",
            axis=-1,
        )
        up = node("MatMul", [x, weight(p + "ffn_up", (hidden, ffn))], p + "up")
        erf = node("Erf", [node("Div", [up, sqrt2], p + "up_s")], p + "erf")
        gelu = node("Mul", [node("Mul", [up, half], p + "up_h"), node("Add", [erf, one], p + "erf1")], p + "gelu")
        down = node("MatMul", [gelu, weight(p + "ffn_down", (ffn, hidden))], p + "down")
        x = node("Add", [down, x], p + "res2")
        x = node(
            "LayerNormalization",
            [x, const(p + "ln2_g", np.ones(hidden, np.float32)), const(p + "ln2_b", np.zeros(hidden, np.float32))],
            p + "ln2" if i < layers - 1 else "y",
            axis=-1,
        )
    graph = helper.make_graph(
        nodes,
        "servesim_encoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", seq_len, hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", seq_len, hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="servesim")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def describe_encoder(layers: int = 12, hidden: int = 768, heads: int = 12, ffn: int = 3072, seq_len: int = 128) -> str:
    params = layers * (4 * hidden * hidden + 2 * hidden * ffn)
    return (
        f"BERT-base-shaped encoder: {layers} layers, hidden {hidden}, {heads} heads, FFN {ffn}, {seq_len} tokens,"
        f" fp32, {params / 1e6:.1f} M encoder weights (embeddings left out), random weights (built with onnx.helper)"
    )


BUILTIN = {
    "mlp": (build_mlp, describe_mlp),
    "bert-base-encoder": (build_encoder, describe_encoder),
}
