"""`vim-deploy bench` on the CPU with a tiny model: outputs are complete and well-formed."""

import csv
import json

import pytest

from tests.helpers import run_cli


def test_bench_writes_csv_json_md_png(tmp_path):
    r = run_cli("bench", "-m", "test_vim", "--backends", "pytorch-fp32,pytorch-fp16,onnxruntime", "--batch", "1,2",
                "--resolutions", "64,96", "--iters", "2", "--warmup", "1", "--out-dir", "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    rep = json.loads((out / "bench.json").read_text())
    assert len(rep["rows"]) == 3 * 2 * 2 and all(row["status"] == "ok" for row in rep["rows"])
    for row in rep["rows"]:
        assert row["img_per_s"] > 0 and row["latency_ms_p50"] <= row["latency_ms_p99"] + 1e-9
        assert row["img_per_s_at_p50"] == pytest.approx(row["batch"] / row["latency_ms_p50"] * 1e3)
    rows = list(csv.DictReader((out / "bench.csv").open()))
    assert len(rows) == 12
    assert {"backend", "img_per_s", "img_per_s_at_p50", "latency_ms_p90", "peak_mem_gb"} <= set(rows[0])
    md = (out / "bench.md").read_text()
    assert md.count("\n| pytorch-fp32 |") == 4 and "img/s" in md and "back to back" in md
    # same-run speed-ups against the PyTorch reference model (pytorch-fp16 here: no official backend)
    assert rep["baseline"] == "pytorch-fp16" and "x pytorch-fp16" in md
    for row in rep["rows"]:
        ref = next(r for r in rep["rows"] if r["backend"] == "pytorch-fp16" and r["resolution"] == row["resolution"]
                   and r["batch"] == row["batch"])
        assert abs(row["speedup_vs_baseline"] - row["img_per_s"] / ref["img_per_s"]) < 1e-9
    assert all(r["speedup_vs_baseline"] == 1.0 for r in rep["rows"] if r["backend"] == "pytorch-fp16")
    assert rows[0]["speedup_vs_baseline"] != ""
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a CPU run names the CPU, not a cuBLAS setting it did not use (GPU runs name it: vim_deploy/cublas_workspace.py)
    assert rep["cublas_workspace"] is None and "cuBLAS" not in md
    assert "CPUs)" in rep["device"] and rep["device"] != "x86_64"


def test_bench_bad_input(tmp_path):
    r = run_cli("bench", "-m", "test_vim", "--backends", "tensorrt-magic", "--out-dir", "o", cwd=tmp_path)
    assert r.returncode == 1 and "unknown backend 'tensorrt-magic'" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("bench", "--batch", "0,x", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = run_cli("bench", "--rounds", "0", cwd=tmp_path)
    assert r.returncode == 2 and "--rounds" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("bench", "-m", "test_vim", "--backends", "fastpath-fp16", "--device", "cpu", "--out-dir", "o", cwd=tmp_path)
    assert r.returncode == 1 and "needs a CUDA GPU" in r.stderr
    assert not (tmp_path / "o").exists()


def test_official_backend_errors_are_one_line(tmp_path):
    # on a CPU machine: the official code needs mamba_ssm's CUDA kernels
    r = run_cli("bench", "-m", "vim_tiny", "--backends", "official-fp16", "--device", "cpu", "--out-dir", "o",
                cwd=tmp_path)
    assert r.returncode == 1 and "needs a CUDA GPU" in r.stderr and "Traceback" not in r.stderr


def test_upstream_checkout_is_checked(tmp_path, monkeypatch):
    from vim_deploy.runtimes.upstream import official_name, upstream_dir
    from vim_deploy.errors import VimDeployError

    monkeypatch.delenv("VIM_DEPLOY_UPSTREAM", raising=False)
    with pytest.raises(VimDeployError, match="checkout"):
        upstream_dir(None)
    with pytest.raises(VimDeployError, match="not a hustvl/Vim checkout"):
        upstream_dir(str(tmp_path))
    assert official_name("vim_small").startswith("vim_small_patch16_224_bimambav2")
    with pytest.raises(VimDeployError, match="no upstream counterpart"):
        official_name("test_vim")


def test_tensorrt_backend_needs_an_engine_and_a_gpu(tmp_path):
    r = run_cli("bench", "-m", "test_vim", "--backends", "tensorrt", "--device", "cpu", "--out-dir", "o", cwd=tmp_path)
    assert r.returncode == 1 and "needs an engine" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "e.plan").write_bytes(b"x")
    (tmp_path / "e.plan.json").write_text('{"onnx_metadata": {"img_size": "224"}}')
    r = run_cli("bench", "-m", "test_vim", "--backends", "tensorrt", "--engine", "e.plan", "--device", "cpu",
                "--out-dir", "o", cwd=tmp_path)
    assert r.returncode == 1 and "needs a CUDA GPU" in r.stderr
    (tmp_path / "f.plan").write_bytes(b"x")  # no sidecar
    r = run_cli("bench", "-m", "test_vim", "--backends", "tensorrt", "--engine", "f.plan", "--device", "cpu",
                "--out-dir", "o", cwd=tmp_path)
    assert r.returncode == 1 and "f.plan.json" in r.stderr and "Traceback" not in r.stderr


def test_deit_backend_names_are_checked():
    """deit_<size>-<math|sdpa>[-fp16][-graph]: anything else is a one-line unknown-backend error."""
    from vim_deploy.bench.backends import make_backend
    from vim_deploy.errors import VimDeployError

    for bad in ("deit_tiny-sdpa-bogus", "deit_huge-sdpa", "deit_tiny-flash", "deit_tiny-sdpa-graph-fp16"):
        with pytest.raises(VimDeployError, match="unknown backend") as e:
            make_backend(bad, "vim_tiny", None, "cpu")
        assert "[-graph]" in e.value.one_line()


class _CountingBackend:
    """A CPU stand-in whose runs take about 1 ms each."""

    def __init__(self):
        self.runs = 0

    def run(self):
        import time

        self.runs += 1
        time.sleep(0.001)


def test_back_to_back_timing_counts_every_run():
    from vim_deploy.bench.timing import time_back_to_back

    be = _CountingBackend()
    ms = time_back_to_back(be.run, 7, cuda=False)
    assert be.runs == 7 and 1.0 <= ms < 50.0


def test_rounds_alternate_the_order_and_take_the_median_round(monkeypatch):
    """--rounds N: the sweep runs N times, every other round reversed; img/s is the median round's, the latency
    percentiles pool every round, and a configuration that failed is not tried again."""
    import statistics

    from vim_deploy.bench import runner

    calls = []

    from vim_deploy.runtimes.base import Runner

    class Fake(Runner):
        """A backend that is its own runner."""

        def __init__(self, name, fail=False):
            self.name, self.fail = name, fail

        def runner(self, batch, res):
            calls.append(self.name)
            if self.fail:
                raise RuntimeError("boom")
            return self

        def run(self):
            pass

    fakes = {"a": Fake("a"), "b": Fake("b"), "bad": Fake("bad", fail=True)}
    monkeypatch.setattr(runner, "make_backend", lambda name, *a: fakes[name])
    streamed = iter([4.0, 2.0, 8.0, 1.0, 3.0, 5.0])  # ms a batch: a, b in round 1; b, a in round 2; a, b in round 3
    monkeypatch.setattr(runner, "time_back_to_back", lambda run, iters, cuda: next(streamed))
    monkeypatch.setattr(runner, "time_runs", lambda run, w, n, cuda: [float(len(calls))] * n)
    cfg = runner.BenchConfig(model="test_vim", backends=["a", "b"], batches=[2], resolutions=[64], warmup=0, iters=2,
                             rounds=3, device="cpu")
    rep = runner.run_bench(cfg)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    a, b = rep["rows"]
    assert a["img_per_s_rounds"] == [2 / 4e-3, 2 / 1e-3, 2 / 3e-3] and a["img_per_s"] == statistics.median(a["img_per_s_rounds"])
    assert b["img_per_s_rounds"] == [2 / 2e-3, 2 / 8e-3, 2 / 5e-3] and b["img_per_s"] == 2 / 5e-3
    assert a["latency_ms_p50"] == statistics.median([1.0, 1.0, 4.0, 4.0, 5.0, 5.0])
    calls.clear()
    cfg.backends, cfg.rounds = ["bad", "a"], 2
    streamed = iter([4.0, 2.0])
    rep = runner.run_bench(cfg)
    assert calls == ["bad", "a", "a"]  # bad failed in round 1: round 2 does not try it again
    assert rep["rows"][0]["status"] == "error" and "boom" in rep["rows"][0]["error"]
    assert rep["rows"][1]["img_per_s_rounds"] == [2 / 4e-3, 2 / 2e-3]
    from vim_deploy.bench.report import to_markdown

    assert "in each of 2 rounds" in to_markdown(rep)


def test_non_finite_logits_are_warned_about_in_the_row(monkeypatch):
    """A backend whose forwards give NaN logits gets a warning line and a note in its row."""
    import numpy as np

    from vim_deploy.bench import runner
    from vim_deploy.runtimes.base import Runner

    class NanBackend(Runner):
        name = "nan-backend"

        def runner(self, batch, res):
            return self

        def run(self):
            pass

        def output(self):
            return np.array([[0.0, np.nan]], np.float32)

    monkeypatch.setattr(runner, "make_backend", lambda name, *a: NanBackend())
    rep = runner.run_bench(runner.BenchConfig(model="test_vim", backends=["x"], batches=[1], resolutions=[64],
                                              warmup=0, iters=1, device="cpu"))
    assert rep["rows"][0]["status"] == "ok" and rep["rows"][0]["note"] == "1 of 2 logits NaN / inf"
