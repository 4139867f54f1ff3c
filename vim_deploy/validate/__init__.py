"""Accuracy parity: the PyTorch reference vs exported graphs and TensorRT engines (runners from vim_deploy.runtimes)."""

from vim_deploy.validate.compare import THRESHOLDS, Metrics, compare_logits, judge
from vim_deploy.validate.validation import ValidateConfig, run_validation
from vim_deploy.validate.report import to_markdown, write_reports

__all__ = ["THRESHOLDS", "Metrics", "compare_logits", "judge", "ValidateConfig", "run_validation",
           "to_markdown", "write_reports"]
