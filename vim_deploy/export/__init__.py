"""Export PyTorch Vim to ONNX in a graph form (custom scan nodes, ONNX function, or portable standard ops)."""

from vim_deploy.export.forms import PRESETS, GraphForm
from vim_deploy.export.onnx_export import PRECISIONS, SUPPORTED_OPSETS, ExportConfig, ExportResult, export_onnx

__all__ = ["ExportConfig", "ExportResult", "export_onnx", "GraphForm", "PRESETS", "SUPPORTED_OPSETS", "PRECISIONS"]
