"""Post-export graph work: folding, readable names, function inlining, metadata, checks."""

from __future__ import annotations

import collections
import re

import onnx
import onnx.inliner


def _gs():
    """onnx-graphsurgeon, imported on first use (the CLI's other commands work without it)."""
    try:
        import onnx_graphsurgeon as gs
        import onnxruntime as ort
    except ImportError as e:
        raise VimDeployError(f"exporting needs {e.name}.", "pip install onnx-graphsurgeon onnxruntime") from None
    ort.set_default_logger_severity(3)  # graphsurgeon folds through onnxruntime; keep its optimizer quiet
    return gs

from vim_deploy.errors import VimDeployError
from vim_deploy.ops import schema


def _readable(name: str) -> str:
    return re.sub(r"^\.", "", name.replace("/", "."))


def cleanup(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Fold constants, drop identities and dead nodes, sort, and give nodes module-path names.

    Scan nodes become ``layers.<i>.mixer.scan_fwd`` / ``scan_bwd`` (forward branch first, as traced).
    """
    gs = _gs()
    graph = gs.import_onnx(proto)
    graph.fold_constants().cleanup(remove_unused_graph_inputs=False).toposort()
    seen = collections.Counter()
    for node in graph.nodes:
        if node.op == schema.BI_OP_NAME:
            m = re.search(r"layers\.(\d+)", node.name)
            node.name = f"layers.{m.group(1) if m else '?'}.mixer.scan_bi"
        elif node.op == schema.OP_NAME:
            m = re.search(r"layers\.(\d+)", node.name)
            key = m.group(1) if m else "?"
            direction = "fwd" if seen[key] == 0 else "bwd"
            seen[key] += 1
            node.name = f"layers.{key}.mixer.scan_{direction}"
        else:
            node.name = _readable(node.name)
    out = gs.export_onnx(graph)
    _remove_identities(out)
    return out


def _remove_identities(proto: onnx.ModelProto) -> None:
    """Bypass Identity nodes whose output is not a graph output."""
    graph_outputs = {o.name for o in proto.graph.output}
    rename = {}
    keep = []
    for node in proto.graph.node:
        if node.op_type == "Identity" and node.output[0] not in graph_outputs:
            rename[node.output[0]] = rename.get(node.input[0], node.input[0])
        else:
            keep.append(node)
    if not rename:
        return
    for node in keep:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    del proto.graph.node[:]
    proto.graph.node.extend(keep)


def count_scan_nodes(proto: onnx.ModelProto) -> int:
    """Custom scan nodes of either form (single direction or fused bidirectional)."""
    return len(schema.scan_nodes(proto))


def op_histogram(proto: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(collections.Counter(
        (f"{n.domain}::{n.op_type}" if n.domain else n.op_type) for n in proto.graph.node).items()))


def inline_scan_functions(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Replace every custom scan node by the body of its local function; drop the custom domain."""
    proto = onnx.inliner.inline_local_functions(proto)
    if count_scan_nodes(proto):
        raise VimDeployError("internal error: scan nodes left after inlining the portable function.")
    del proto.functions[:]
    keep = [o for o in proto.opset_import if o.domain != schema.OP_DOMAIN]
    del proto.opset_import[:]
    proto.opset_import.extend(keep)
    gs = _gs()
    graph = gs.import_onnx(proto)
    graph.fold_constants().cleanup().toposort()
    for i, node in enumerate(graph.nodes):
        if not node.name:
            node.name = f"{node.op}_{i}"
    return gs.export_onnx(graph)


def set_metadata(proto: onnx.ModelProto, props: dict[str, str]) -> None:
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)


def check_and_infer(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Full ONNX checker plus shape inference; custom-node outputs get the shape of input ``u``."""
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, data_prop=True)
        known = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.input)}
        for node in inferred.graph.node:
            if node.op_type == schema.OP_NAME and node.output[0] not in known and node.input[0] in known:
                vi = onnx.ValueInfoProto()
                vi.CopyFrom(known[node.input[0]])
                vi.name = node.output[0]
                inferred.graph.value_info.append(vi)
        # Propagate through the rest of the graph now that the custom outputs are typed.
        inferred = onnx.shape_inference.infer_shapes(inferred, check_type=True, data_prop=True)
        onnx.checker.check_model(inferred, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise VimDeployError(f"internal error: the exported graph fails the ONNX checker: {str(e).splitlines()[0]}") from None
    return inferred
