"""The contract of the custom ONNX node that carries one selective scan.

Exporter, ONNX reference implementation, portable ONNX function and the TensorRT plugin
(``plugins/selective_scan/selectiveScanPlugin.h``) must agree on everything here; a test reads
the C++ header and checks that the name, version and attributes match.

Inputs (mamba_ssm ``selective_scan_fn`` layout):

====  ============  ==========  =========================================
 #    name          shape       dtype
====  ============  ==========  =========================================
 0    u             (B, D, L)   T  (float32 | float16 | bfloat16)
 1    delta         (B, D, L)   T
 2    A             (D, N)      float32   (already ``-exp(A_log)``)
 3    B             (B, N, L)   T
 4    C             (B, N, L)   T
 5    D             (D,)        float32
 6    z             (B, D, L)   T
 7    delta_bias    (D,)        float32
====  ============  ==========  =========================================

Output 0: ``y`` (B, D, L) of type T, ``y = (scan(u) + D * u) * silu(z)`` with the state kept in
float32. Attributes (all INT, so TensorRT's ONNX parser hands them to the plugin as kINT32):
``delta_softplus`` (apply softplus to ``delta + delta_bias``) and ``reverse`` (scan from the last
token to the first, so Vim's backward branch needs no flips). ``plugin_version`` and
``plugin_namespace`` are read by TensorRT's parser to pick the plugin creator.
"""

OP_NAME = "VimSelectiveScan"
OP_DOMAIN = "vim_deploy"
OP_DOMAIN_VERSION = 1
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = ""

INPUT_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
FLOAT32_INPUTS = ("A", "D", "delta_bias")
OUTPUT_NAMES = ("y",)
INT_ATTRIBUTES = {"delta_softplus": 1, "reverse": 0}

# Fused bidirectional form: both directions of one Vim block in one node (one kernel launch).
# y = (scan(u_f, ..., z) + scan_reverse(u_b, ..., z)) * out_scale, both in original token order;
# same dtype rules as above (A_*, D_*, delta_bias_* float32). Attributes: delta_softplus (INT),
# out_scale (FLOAT; 0.5 for Vim's if_divide_out).
BI_OP_NAME = "VimBiSelectiveScan"
BI_INPUT_NAMES = ("u_f", "delta_f", "A_f", "B_f", "C_f", "D_f", "delta_bias_f",
                  "u_b", "delta_b", "A_b", "B_b", "C_b", "D_b", "delta_bias_b", "z")
BI_FLOAT32_INPUTS = ("A_f", "D_f", "delta_bias_f", "A_b", "D_b", "delta_bias_b")
BI_INT_ATTRIBUTES = {"delta_softplus": 1}
BI_FLOAT_ATTRIBUTES = {"out_scale": 1.0}

# The one place that says which ONNX nodes are scan nodes (exporter checks, graph kind detection,
# engine build reports, the onnxruntime attribute check all ask here).
SCAN_OPS = (OP_NAME, BI_OP_NAME)


def is_scan_node(node) -> bool:
    """An ONNX NodeProto (or FunctionProto: same fields) of either scan form in our domain."""
    return getattr(node, "op_type", getattr(node, "name", None)) in SCAN_OPS and node.domain == OP_DOMAIN


def scan_nodes(model) -> list:
    """The scan nodes of an onnx ModelProto's main graph, in graph order."""
    return [n for n in model.graph.node if is_scan_node(n)]

# Both directions' depthwise causal conv1d + SiLU of a Vim block in one node (`export --conv-impl op`):
#   u_f[b, d, t] = silu(bias_f[d] + sum_k weight_f[d, k] * x[b, d, t - (W-1) + k])
#   u_b[b, d, t] = silu(bias_b[d] + sum_k weight_b[d, k] * x[b, d, t + (W-1) - k])   (x = 0 outside 0..S-1)
# for t < S, and u_*[b, d, t] = 0 for t >= S, where S = attribute seq_len (optional INT, 0 or absent = L:
# tokens past it are padding; the zeros keep a reverse scan that starts on them at a zero state).
# u_b is the causal conv of the flipped sequence read in token order, what the reverse scan reads;
# weight_* are upstream's conv1d / conv1d_b weights (D, W) unflipped. x (B, Dx, L) with Dx >= D: the op
# reads channels 0..D-1 (the x half of in_proj's output xz, in place); u_f, u_b (B, D, L). x, u_f, u_b of
# type T, weights and biases float32. Served by the ONNX Runtime library (libvim_ort_ops.so), not (yet) by
# the TensorRT plugin: TensorRT's own convolution layers run the plain Conv form.
CONV_OP_NAME = "VimBiCausalConv1dSilu"
CONV_INPUT_NAMES = ("x", "weight_f", "bias_f", "weight_b", "bias_b")
CONV_OUTPUT_NAMES = ("u_f", "u_b")


# A Vim block's residual add + RMSNorm (upstream's fused_add_norm, fp32 residual) in one node
# (`export --norm-impl op`, blocks 2..depth; the first block has no residual to add):
#   residual_out = residual + float(h);  out = T(residual_out * rsqrt(mean(residual_out^2, -1) + epsilon) * weight)
# h (..., C) of type T, residual (..., C) and weight (C) float32; outputs out (T) and residual_out (float32);
# attribute epsilon (FLOAT, required). Served by the ONNX Runtime library only, like the conv node.
ADD_NORM_OP_NAME = "VimAddRmsNorm"
ADD_NORM_INPUT_NAMES = ("h", "residual", "weight")
ADD_NORM_OUTPUT_NAMES = ("out", "residual_out")

# Nodes that only vim-deploy's ONNX Runtime library serves (TensorRT runs the standard-op forms).
ORT_ONLY_OPS = (CONV_OP_NAME, ADD_NORM_OP_NAME)


def ort_only_nodes(model) -> list:
    """The nodes of an ONNX ModelProto's main graph that only the ONNX Runtime library serves."""
    return [n for n in model.graph.node if n.op_type in ORT_ONLY_OPS and n.domain == OP_DOMAIN]
