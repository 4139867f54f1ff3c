"""Export PyTorch Vim to ONNX (custom scan node, ONNX function, or portable standard ops)."""

from vim_deploy.export.onnx_export import (
    PRECISIONS, SCAN_IMPLS, SUPPORTED_OPSETS, ExportConfig, ExportResult, export_onnx,
)

__all__ = ["ExportConfig", "ExportResult", "export_onnx", "SUPPORTED_OPSETS", "SCAN_IMPLS", "PRECISIONS"]
