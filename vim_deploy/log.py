"""Console logging in polygraphy's style: ``RUNNING | ...``, ``PASSED | ...``, ``FAILED | ...``.

A tiny wrapper around :mod:`logging` so that ``-v``/``-q`` work and library users can route the
messages through their own handlers.
"""

from __future__ import annotations

import logging
import sys

LOGGER = logging.getLogger("vim_deploy")


def configure(verbosity: int = 0) -> None:
    """``verbosity``: -1 quiet (warnings and errors), 0 info, 1+ debug."""
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    LOGGER.setLevel(level)
    if not LOGGER.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
        LOGGER.addHandler(handler)
    LOGGER.propagate = False


def info(msg: str) -> None:
    LOGGER.info(msg)


def debug(msg: str) -> None:
    LOGGER.debug(msg)


def warning(msg: str) -> None:
    LOGGER.warning(msg)


def passed(msg: str) -> None:
    LOGGER.info("PASSED | %s", msg)


def failed(msg: str) -> None:
    LOGGER.error("FAILED | %s", msg)
