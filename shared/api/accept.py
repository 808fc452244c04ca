"""Content negotiation on `Accept` (RFC 9110 §12.5.1): which of the media types a route can answer the client
prefers.

Each offered type gets the quality of the most specific media range that matches it (`type/subtype` over
`type/*` over `*/*`; a range with parameters matches only a type carrying them); `q=0` means "not acceptable".
The highest quality wins and the first offered type wins ties. No `Accept` (or an empty one) accepts anything:
the first offered type. A malformed range or `q` is skipped rather than failing the request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_QUALITY = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass(frozen=True)
class _Range:
    kind: str
    subtype: str
    params: frozenset[tuple[str, str]]
    quality: float

    def specificity(self, offered: _Range) -> int | None:
        """How specifically this range matches `offered` (3 exact with parameters … 0 `*/*`), or None."""
        if self.kind == "*":
            return 0 if self.subtype == "*" and not self.params else None
        if self.kind != offered.kind:
            return None
        if self.subtype == "*":
            return 1 if not self.params else None
        if self.subtype != offered.subtype or not self.params <= offered.params:
            return None
        return 3 if self.params else 2


def prefers(accept_header: str | None, offered: list[str]) -> str | None:
    """The offered media type the client prefers, or None when it accepts none of them."""
    if not offered:
        return None
    if accept_header is None or not accept_header.strip():
        return offered[0]
    ranges = [r for r in (_parse(part) for part in accept_header.split(",")) if r is not None]
    best: tuple[float, str] | None = None
    for media_type in offered:
        candidate = _parse(media_type)
        quality = _quality(ranges, candidate) if candidate is not None else 0.0
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, media_type)
    return None if best is None else best[1]


def _quality(ranges: list[_Range], offered: _Range) -> float:
    matches = [(s, r.quality) for r in ranges if (s := r.specificity(offered)) is not None]
    return max(matches)[1] if matches else 0.0


def _parse(text: str) -> _Range | None:
    media_range, *raw_params = (p.strip() for p in text.split(";"))
    kind, slash, subtype = media_range.lower().partition("/")
    if not slash or not _TOKEN.fullmatch(kind) or not _TOKEN.fullmatch(subtype) or (kind == "*" != subtype):
        return None
    params: set[tuple[str, str]] = set()
    quality = 1.0
    for raw in raw_params:
        name, equals, value = raw.partition("=")
        name, value = name.strip().lower(), value.strip().strip('"')
        if not equals or not _TOKEN.fullmatch(name):
            return None
        if name == "q":
            if not _QUALITY.fullmatch(value):
                return None
            quality = float(value)
            break  # what follows q are accept-extensions, not media type parameters
        params.add((name, value.lower() if name == "charset" else value))
    return _Range(kind, subtype, frozenset(params), quality)
