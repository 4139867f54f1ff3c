"""ONNX Runtime with vim-deploy's custom-op library (``libvim_ort_ops.so``): the exported plugin graph
(``vim_deploy::VimSelectiveScan`` / ``VimBiSelectiveScan`` nodes) runs on ORT's CPU and CUDA
execution providers. See :func:`create_session`."""

from vim_deploy.ort.session import (OPS_LIB, check_scan_nodes, create_session, find_ops_library,
                                    ops_library_or_none, session_options)

__all__ = ["OPS_LIB", "check_scan_nodes", "create_session", "find_ops_library", "ops_library_or_none",
           "session_options"]
