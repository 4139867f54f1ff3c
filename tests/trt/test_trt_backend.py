"""The TensorRT-family backend: its messages go to stderr (trt.Logger printed them to stdout, mixed with
reports), and GPUs its runtime cannot run are refused up front."""

import enum
import types

from vim_deploy.trt.backend import make_logger


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


def test_tensorrt_rtx_refuses_hopper_before_deserializing():
    """TensorRT-RTX 1.7's runtime refuses compute capability 9.0 (seen on an H100); the runner says so in one
    line, with what to use instead, before any plan is read."""
    import pytest

    from vim_deploy.errors import VimDeployError
    from vim_deploy.trt.backend import check_runtime_supports_gpu

    rtx = types.SimpleNamespace(__name__="tensorrt_rtx", __version__="1.7.1.116")
    with pytest.raises(VimDeployError, match=r"compute capability 8\.0, .*this GPU is 9\.0") as e:
        check_runtime_supports_gpu(rtx, (9, 0))
    assert "NVIDIA TensorRT" in e.value.one_line()
    for ok in ((8, 0), (8, 6), (8, 9), (12, 0), (13, 0)):
        check_runtime_supports_gpu(rtx, ok)
    check_runtime_supports_gpu(types.SimpleNamespace(__name__="tensorrt", __version__="10.3.0"), (9, 0))
