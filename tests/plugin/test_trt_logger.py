"""TensorRT's warnings and errors go to stderr (trt.Logger printed them to stdout, mixed with reports)."""

import enum
import types

from vim_deploy.trt.engine_build import make_logger


def _fake_trt():
    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    class ILogger:
        def __init__(self):
            pass

    ILogger.Severity = Severity
    return types.SimpleNamespace(ILogger=ILogger)


def test_trt_messages_go_to_stderr(capsys):
    trt = _fake_trt()
    logger = make_logger(trt)
    logger.log(trt.ILogger.Severity.ERROR, "plugin creator not found")
    logger.log(trt.ILogger.Severity.WARNING, "slow format")
    logger.log(trt.ILogger.Severity.INFO, "chatter")
    out, err = capsys.readouterr()
    assert out == ""
    assert "[TensorRT E] plugin creator not found" in err and "[TensorRT W] slow format" in err
    assert "chatter" not in err
