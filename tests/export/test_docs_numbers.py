"""The node counts README.md and docs/export-forms.md quote are what `vim-deploy export` writes for vim_tiny
(recounted here, so the docs cannot drift from the tool)."""

from collections import Counter
from pathlib import Path

import onnx
import pytest

from vim_deploy.export import PRESETS, ExportConfig, export_onnx
from vim_deploy.ops import schema

ROOT = Path(__file__).resolve().parents[2]
FORMS_DOC = (ROOT / "docs" / "export-forms.md").read_text()
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("form, counts, doc_text", [
    ("plain", {schema.OP_NAME: 48}, "| 48 `VimSelectiveScan` |"),
    ("fused", {schema.BI_OP_NAME: 24}, "| 24 `VimBiSelectiveScan` (one launch a block) |"),
    ("ort-optimized", {schema.BI_OP_NAME: 24, schema.CONV_OP_NAME: 24, schema.ADD_NORM_OP_NAME: 23},
     "| 24 scan, 24 conv, 23 add-norm nodes |"),
])
def test_quoted_node_counts(form, counts, doc_text, tmp_path):
    path = str(tmp_path / "g.onnx")
    export_onnx(ExportConfig(model="vim_tiny", output=path, form=PRESETS[form]))
    ops = Counter(n.op_type for n in onnx.load(path, load_external_data=False).graph.node)
    assert {k: ops[k] for k in counts} == counts
    assert doc_text in FORMS_DOC
    if form == "plain":
        assert "writes vim_tiny.onnx: 48 VimSelectiveScan nodes" in README
