"""Long phases show progress (a bar on a terminal, quarter lines in a log) and -q silences it."""

import logging

from tests.helpers import run_cli
from vim_deploy import log
from vim_deploy.cli.options import Progress


def test_bar_logs_quarters_when_not_a_terminal(caplog):
    log.configure(0)
    log.LOGGER.propagate = True
    try:
        with caplog.at_level(logging.INFO, logger="vim_deploy"):
            tick = Progress().bar("work", 8)
            for _ in range(8):
                tick()
        lines = [r.getMessage() for r in caplog.records if "work:" in r.getMessage()]
        assert [line.split("work: ")[1] for line in lines] == ["1/8", "2/8", "4/8", "6/8", "8/8"]
    finally:
        log.LOGGER.propagate = False


def test_bar_is_silent_when_quiet(caplog):
    log.configure(-1)
    log.LOGGER.propagate = True
    try:
        tick = Progress().bar("work", 4)
        for _ in range(4):
            tick()
        assert not [r for r in caplog.records if "work" in r.getMessage()]
    finally:
        log.LOGGER.propagate = False
        log.configure(0)


def test_export_shows_tracing_progress_per_block(tmp_path):
    r = run_cli("export", "--model", "test_vim", "-o", "t.onnx", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "tracing 2 blocks: 2/2" in r.stderr
    # what follows the trace is said too (torch.onnx's own passes took seconds to minutes in silence)
    lines = r.stderr.splitlines()
    i = next(k for k, line in enumerate(lines) if "converting the trace to ONNX nodes" in line)
    assert "tracing 2 blocks: 2/2" in lines[i - 1] and "checking that the model's output" in lines[i + 1]
    r = run_cli("export", "-q", "--model", "test_vim", "-o", "t2.onnx", cwd=tmp_path)
    assert r.returncode == 0 and "tracing" not in r.stderr
