"""Changes to `os.environ` that can be undone: the app settings a host applies for as long as it runs.

Each name's value from before its first change is kept (None: it was not set), so `undo` restores exactly what
was there, however many times a name was changed in between.
"""

from __future__ import annotations

import os


class EnvironChanges:
    def __init__(self) -> None:
        self._before: dict[str, str | None] = {}

    def set(self, name: str, value: str) -> None:
        self._before.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def remove(self, name: str) -> None:
        self._before.setdefault(name, os.environ.get(name))
        os.environ.pop(name, None)

    def undo(self) -> None:
        for name, value in self._before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._before.clear()
