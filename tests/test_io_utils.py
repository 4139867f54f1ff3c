"""Output files: atomic, with the permissions a plain open() gives, and strict JSON."""

import json
import os
import stat

import pytest

from vim_deploy.io_utils import atomic_write_text, dumps_json, json_safe


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        p = tmp_path / "a.json"
        atomic_write_text(p, "x")
        assert _mode(p) == 0o644
        os.umask(0o077)
        atomic_write_text(p, "y")  # overwriting keeps what open() would give under the current umask
        assert _mode(p) == 0o600 and p.read_text() == "y"
    finally:
        os.umask(old)


def test_overwriting_a_0644_file_keeps_it_readable(tmp_path):
    old = os.umask(0o022)
    try:
        p = tmp_path / "m.onnx"
        p.write_text("old")
        os.chmod(p, 0o644)
        atomic_write_text(p, "new")
        assert _mode(p) == 0o644
    finally:
        os.umask(old)


def test_reports_are_strict_json():
    report = {"metrics": {"cosine_min": float("nan"), "rel_l2": float("inf"), "ok": 1.5}, "rows": [float("-inf")]}
    text = dumps_json(report)

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    back = json.loads(text, parse_constant=refuse)
    assert back == {"metrics": {"cosine_min": None, "rel_l2": None, "ok": 1.5}, "rows": [None]}
    assert json_safe((1.0, float("nan"))) == [1.0, None]


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_bench_report_json_is_strict(tmp_path, value):
    from vim_deploy.bench.report import write_all

    report = {"config": {"model": "vim_tiny", "warmup": 1, "iters": 1}, "device": "cpu", "date": "d", "tool": "t",
              "torch": "x", "rows": [{"backend": "pytorch-fp32", "resolution": 224, "batch": 1, "status": "ok",
                                      "img_per_s": value, "latency_ms_p50": 1.0}]}
    write_all(report, str(tmp_path))
    json.loads((tmp_path / "bench.json").read_text(), parse_constant=lambda t: (_ for _ in ()).throw(ValueError(t)))
