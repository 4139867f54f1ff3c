"""The selective scan written in standard ONNX ops, as an ONNX local function.

One definition serves two export modes:

* ``function``: every ``vim_deploy::VimSelectiveScan`` node stays a single node, and the model
  carries this function under the same domain and name. onnxruntime expands the function;
  TensorRT >= 10.7 prefers a registered plugin of that name and only falls back to the body.
* ``portable``: the function is inlined, leaving standard ONNX ops only (opset 17/18).

The body: softplus(delta + delta_bias) (numerically stable form), ``dA = exp(delta*A)`` and
``dBu = delta*u*B`` for all tokens, then an ONNX ``Scan`` over the tokens carrying the fp32 state
(B, D, N); ``y = <C, h> + D*u``, gated by ``silu(z)``. The ``reverse`` attribute is honoured by
gathering the tokens in reverse order before and after the scan (the reversal is its own inverse).
"""

from __future__ import annotations

import onnx
from onnx import AttributeProto, TensorProto, helper

from vim_deploy.ops import schema


def _ref_int_constant(output: str, attr: str) -> onnx.NodeProto:
    node = helper.make_node("Constant", [], [output])
    a = AttributeProto()
    a.name, a.ref_attr_name, a.type = "value_int", attr, AttributeProto.INT
    node.attribute.append(a)
    return node


def _scan_body() -> onnx.GraphProto:
    """One token step: ``h = dA*h + dBu``; ``y = sum_n h * C``."""
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("Mul", ["a_t", "h_in"], ["ah"]),
        helper.make_node("Add", ["ah", "bu_t"], ["h_out"]),
        helper.make_node("Constant", [], ["one"], value=helper.make_tensor("one", TensorProto.INT64, [1], [1])),
        helper.make_node("Unsqueeze", ["c_t", "one"], ["c_e"]),  # (B, 1, N)
        helper.make_node("Mul", ["h_out", "c_e"], ["hc"]),
        helper.make_node("Constant", [], ["two"], value=helper.make_tensor("two", TensorProto.INT64, [1], [2])),
        helper.make_node("ReduceSum", ["hc", "two"], ["y_t"], keepdims=0),
    ]
    return helper.make_graph(
        nodes, "selective_scan_step",
        [helper.make_tensor_value_info("h_in", f, None), helper.make_tensor_value_info("a_t", f, None),
         helper.make_tensor_value_info("bu_t", f, None), helper.make_tensor_value_info("c_t", f, None)],
        [helper.make_tensor_value_info("h_out", f, None), helper.make_tensor_value_info("y_t", f, None)],
    )


def build_scan_function(opset: int) -> onnx.FunctionProto:
    """``vim_deploy::VimSelectiveScan`` as a FunctionProto over ONNX ``opset``."""
    F = TensorProto.FLOAT
    i64 = lambda name, vals: helper.make_node(  # noqa: E731
        "Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64, [len(vals)], vals))
    n = helper.make_node
    nodes = [
        _ref_int_constant("softplus_flag", "delta_softplus"),
        _ref_int_constant("reverse_flag", "reverse"),
        # token order: idx = ar + reverse * (L - 1 - 2 * ar)
        n("Shape", ["u"], ["L1"], start=2, end=3),
        i64("zero1", [0]), i64("one1", [1]), i64("two1", [2]), i64("last1", [-1]),
        n("Squeeze", ["L1"], ["L"]),
        n("Constant", [], ["i0"], value=helper.make_tensor("i0", TensorProto.INT64, [], [0])),
        n("Constant", [], ["i1"], value=helper.make_tensor("i1", TensorProto.INT64, [], [1])),
        n("Constant", [], ["i2"], value=helper.make_tensor("i2", TensorProto.INT64, [], [2])),
        n("Range", ["i0", "L", "i1"], ["ar"]),
        n("Sub", ["L", "i1"], ["Lm1"]),
        n("Mul", ["ar", "i2"], ["ar2"]),
        n("Sub", ["Lm1", "ar2"], ["span"]),
        n("Mul", ["span", "reverse_flag"], ["shift"]),
        n("Add", ["ar", "shift"], ["idx"]),
        # fp32 views of the token-major inputs, in scan order
        *[n("Cast", [t], [f"{t}_f"], to=F) for t in ("u", "delta", "B", "C", "z")],
        *[n("Gather", [f"{t}_f", "idx"], [f"{t}_s"], axis=2) for t in ("u", "delta", "B", "C", "z")],
        # delta = softplus(delta + bias) if delta_softplus
        n("Unsqueeze", ["delta_bias", "one1"], ["bias_e"]),
        n("Add", ["delta_s", "bias_e"], ["d_raw"]),
        n("Relu", ["d_raw"], ["d_pos"]),
        n("Abs", ["d_raw"], ["d_abs"]),
        n("Neg", ["d_abs"], ["d_nabs"]),
        n("Exp", ["d_nabs"], ["d_exp"]),
        n("Constant", [], ["f1"], value=helper.make_tensor("f1", F, [], [1.0])),
        n("Add", ["d_exp", "f1"], ["d_1p"]),
        n("Log", ["d_1p"], ["d_log"]),
        n("Add", ["d_pos", "d_log"], ["d_sp"]),
        n("Cast", ["softplus_flag"], ["sp_bool"], to=TensorProto.BOOL),
        n("Where", ["sp_bool", "d_sp", "d_raw"], ["d"]),
        # dA = exp(d * A): (B, D, L, 1) * (D, 1, N)
        n("Unsqueeze", ["d", "last1"], ["d_e"]),
        n("Unsqueeze", ["A", "one1"], ["A_e"]),
        n("Mul", ["d_e", "A_e"], ["dA_log"]),
        n("Exp", ["dA_log"], ["dA"]),
        # dBu = d * u * B: (B, D, L, 1) * (B, 1, L, N)
        n("Mul", ["d", "u_s"], ["du"]),
        n("Unsqueeze", ["du", "last1"], ["du_e"]),
        n("Transpose", ["B_s"], ["B_t"], perm=[0, 2, 1]),
        n("Unsqueeze", ["B_t", "one1"], ["B_e"]),
        n("Mul", ["du_e", "B_e"], ["dBu"]),
        # token-major for Scan
        n("Transpose", ["dA"], ["dA_l"], perm=[2, 0, 1, 3]),
        n("Transpose", ["dBu"], ["dBu_l"], perm=[2, 0, 1, 3]),
        n("Transpose", ["C_s"], ["C_l"], perm=[2, 0, 1]),
        # h0 = zeros(B, D, N)
        n("Shape", ["u"], ["BD"], start=0, end=2),
        n("Shape", ["A"], ["N1"], start=1, end=2),
        n("Concat", ["BD", "N1"], ["h_shape"], axis=0),
        n("ConstantOfShape", ["h_shape"], ["h0"], value=helper.make_tensor("zero", F, [1], [0.0])),
        n("Scan", ["h0", "dA_l", "dBu_l", "C_l"], ["h_last", "y_l"], num_scan_inputs=3, body=_scan_body()),
        n("Transpose", ["y_l"], ["y_scan"], perm=[1, 2, 0]),
        n("Unsqueeze", ["D", "one1"], ["D_e"]),
        n("Mul", ["u_s", "D_e"], ["Du"]),
        n("Add", ["y_scan", "Du"], ["y_skip"]),
        n("Sigmoid", ["z_s"], ["z_sig"]),
        n("Mul", ["z_s", "z_sig"], ["z_silu"]),
        n("Mul", ["y_skip", "z_silu"], ["y_gated"]),
        n("Gather", ["y_gated", "idx"], ["y_ordered"], axis=2),
        n("CastLike", ["y_ordered", "u"], ["y"]),
    ]
    attrs = [helper.make_attribute(k, v) for k, v in schema.INT_ATTRIBUTES.items()]
    attrs += [helper.make_attribute("plugin_version", schema.PLUGIN_VERSION),
              helper.make_attribute("plugin_namespace", schema.PLUGIN_NAMESPACE)]
    return helper.make_function(
        schema.OP_DOMAIN, schema.OP_NAME, list(schema.INPUT_NAMES), list(schema.OUTPUT_NAMES), nodes,
        opset_imports=[helper.make_opsetid("", opset)], attribute_protos=attrs,
        doc_string="Selective scan (mamba_ssm semantics, fp32 state) in standard ONNX ops.",
    )


def _ref_attr(name: str, ref: str, attr_type) -> AttributeProto:
    a = AttributeProto()
    a.name, a.ref_attr_name, a.type = name, ref, attr_type
    return a


def build_bi_scan_function(opset: int) -> onnx.FunctionProto:
    """``vim_deploy::VimBiSelectiveScan``: two calls of the single-direction function, summed in fp32."""
    n = helper.make_node
    fwd = n(schema.OP_NAME, ["u_f", "delta_f", "A_f", "B_f", "C_f", "D_f", "z", "delta_bias_f"], ["y_f"],
            domain=schema.OP_DOMAIN, reverse=0)
    bwd = n(schema.OP_NAME, ["u_b", "delta_b", "A_b", "B_b", "C_b", "D_b", "z", "delta_bias_b"], ["y_b"],
            domain=schema.OP_DOMAIN, reverse=1)
    for node in (fwd, bwd):
        node.attribute.append(_ref_attr("delta_softplus", "delta_softplus", AttributeProto.INT))
    scale = helper.make_node("Constant", [], ["scale"])
    scale.attribute.append(_ref_attr("value_float", "out_scale", AttributeProto.FLOAT))
    nodes = [
        fwd, bwd, scale,
        n("Cast", ["y_f"], ["y_f32"], to=TensorProto.FLOAT),
        n("Cast", ["y_b"], ["y_b32"], to=TensorProto.FLOAT),
        n("Add", ["y_f32", "y_b32"], ["y_sum"]),
        n("Cast", ["scale"], ["scale32"], to=TensorProto.FLOAT),  # keeps folded constants float32
        n("Mul", ["y_sum", "scale32"], ["y_scaled"]),
        n("CastLike", ["y_scaled", "u_f"], ["y"]),
    ]
    attrs = [helper.make_attribute(k, v) for k, v in schema.BI_INT_ATTRIBUTES.items()]
    attrs += [helper.make_attribute(k, v) for k, v in schema.BI_FLOAT_ATTRIBUTES.items()]
    attrs += [helper.make_attribute("plugin_version", schema.PLUGIN_VERSION),
              helper.make_attribute("plugin_namespace", schema.PLUGIN_NAMESPACE)]
    return helper.make_function(
        schema.OP_DOMAIN, schema.BI_OP_NAME, list(schema.BI_INPUT_NAMES), ["y"], nodes,
        opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(schema.OP_DOMAIN, schema.OP_DOMAIN_VERSION)],
        attribute_protos=attrs,
        doc_string="Both directions of a Vim block: (scan(fwd) + reverse_scan(bwd)) * out_scale.",
    )
