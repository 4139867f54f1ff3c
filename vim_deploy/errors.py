"""One exception type for every user-facing failure.

The CLI turns a :class:`VimDeployError` into a one-line message and exit code 1 (no traceback);
anything else escaping is a bug and keeps its traceback. Messages follow polygraphy's habit:
the failure first, then an optional ``Note:`` with what to do about it.
"""

from __future__ import annotations


class VimDeployError(Exception):
    """A problem with the user's input or environment that the user can fix."""

    def __init__(self, message: str, note: str | None = None):
        self.message = message
        self.note = note
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return self.message if not self.note else f"{self.message} Note: {self.note}"

