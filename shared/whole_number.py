"""One reading of a whole number from text that came from outside (a query, a header, a body, a setting).

`str.isdigit()`, `int()` and `float()` all accept digits of other scripts: `isdigit()` is true for a superscript
two and `int()` of it raises; `int()` reads a full-width five as 5 and Arabic-Indic one-zero as 10. What callers
and services send is ASCII, so only `0`-`9` count (`re`'s `[0-9]` is ASCII; `\\d` is not).
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]+")


def whole_number(text: str | None, *, max_digits: int = 18, canonical: bool = False) -> int | None:
    """`text` as an int when it is 1 to `max_digits` ASCII digits, else None. With `canonical`, only the form
    `str(n)` is accepted (no leading zero), for values that are signed or compared as text."""
    if text is None or not 0 < len(text) <= max_digits or not _DIGITS.fullmatch(text):
        return None
    number = int(text)
    if canonical and str(number) != text:
        return None
    return number
