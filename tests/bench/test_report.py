"""Report rendering (no GPU): speed-ups against the same-run baseline, and peaks a backend cannot report."""

from vim_deploy.bench.report import speedups, to_markdown


def _report(rows):
    return {"config": {"model": "vim_tiny", "warmup": 1, "iters": 3}, "device": "test GPU", "date": "2026-11-27",
            "tool": "vim-deploy test", "torch": "x", "rows": rows}


def _row(backend, ips, peak, res=224, batch=8):
    return {"backend": backend, "resolution": res, "batch": batch, "device": "cuda", "status": "ok",
            "img_per_s": ips, "latency_ms_p50": 1.0, "latency_ms_p90": 1.0, "latency_ms_p99": 1.0, "peak_mem_gb": peak}


def test_speedups_are_against_the_official_model_when_it_ran():
    base, ratio = speedups(_report([_row("pytorch-fp16", 10.0, 1.0), _row("official-fp16", 50.0, 1.0),
                                    _row("fastpath-fp16", 150.0, 0.5)]))
    assert base == "official-fp16"
    assert ratio == {0: 0.2, 1: 1.0, 2: 3.0}


def test_untracked_peak_memory_is_a_dash_with_a_reason():
    md = to_markdown(_report([_row("onnxruntime-cuda", 30.0, None), _row("fastpath-fp16", 4000.0, 0.11)]))
    ort_line = next(line for line in md.splitlines() if line.startswith("| onnxruntime-cuda"))
    assert "| — |" in ort_line
    assert "Peak GB not measured for onnxruntime-cuda" in md
    assert "not measured for fastpath" not in md


def test_plot_of_one_resolution_is_bars_and_of_several_lines():
    """One resolution: a bar a (backend, batch), no memory panel without GPU memory; several: lines."""
    pytest = __import__("pytest")
    pytest.importorskip("matplotlib")
    from vim_deploy.bench.report import plot_png

    def report(resolutions, mem):
        rows = [{"backend": be, "model": "vim_tiny", "resolution": res, "batch": 1, "device": "cpu", "status": "ok",
                 "img_per_s": v * (224 / res), "latency_ms_p50": 1.0, "peak_mem_gb": mem}
                for be, v in (("pytorch-fp32", 1.0), ("onnxruntime", 2.3)) for res in resolutions]
        return {"rows": rows, "config": {"model": "vim_tiny"}, "device": "AMD EPYC (2 CPUs)"}

    import io

    from PIL import Image

    one = Image.open(io.BytesIO(plot_png(report([224], None))))
    many = Image.open(io.BytesIO(plot_png(report([224, 512, 1248], 0.5))))
    assert one.size[0] < many.size[0]  # a single panel, no legend column
    assert one.size[1] < 450
