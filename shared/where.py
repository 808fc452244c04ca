"""Where an unexpected exception happened, without a stack trace or any value that could hold a secret."""

from __future__ import annotations

import traceback


def where(error: BaseException) -> str:
    """`file.py:line` of the innermost frame: enough to find the bug."""
    frames = traceback.extract_tb(error.__traceback__)
    return f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "unknown"
