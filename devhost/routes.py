"""HTTP trigger route templates, matched the way ASP.NET Core routing does for the Functions host.

What this app's functions use: literal segments (case-insensitive), ``{name}`` and an optional trailing
``{name?}``. When several routes match, the most specific wins (literal > parameter > optional). Other
template syntax (constraints such as ``{id:int}``, defaults, catch-all ``{*rest}``) is refused at start-up
with a message that says so, rather than silently matched differently from Azure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from devhost.errors import ConfigError

# What an HTTP trigger without ``methods`` accepts.
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")
_PARAMETER = re.compile(r"^\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<optional>\?)?\}$")


@dataclass(frozen=True)
class _Segment:
    literal: str | None = None
    name: str = ""
    optional: bool = False

    @property
    def precedence(self) -> int:
        return 1 if self.literal is not None else 3 if self.optional else 2


class RouteTemplate:
    """A parsed route template such as ``api/upgrades/{upgradeId}``."""

    def __init__(self, template: str) -> None:
        self.template = template.strip("/")
        self.segments = tuple(self._parse_segment(s) for s in self.template.split("/")) if self.template else ()
        for i, segment in enumerate(self.segments):
            if segment.optional and any(not s.optional for s in self.segments[i + 1 :]):
                raise ConfigError(f"route '{template}': an optional parameter must be at the end of the template")
        names = [s.name for s in self.segments if s.literal is None]
        if len(set(names)) != len(names):
            raise ConfigError(f"route '{template}': a parameter name appears more than once")

    @property
    def precedence(self) -> tuple[int, ...]:
        return tuple(s.precedence for s in self.segments)

    def match(self, path: str) -> dict[str, str] | None:
        """Route values for a request path (percent-encoded, without query), or None."""
        parts = path.strip("/").split("/") if path.strip("/") else []
        if len(parts) > len(self.segments):
            return None
        values: dict[str, str] = {}
        for i, segment in enumerate(self.segments):
            if i >= len(parts):
                if segment.optional:
                    continue
                return None
            value = unquote(parts[i])
            if segment.literal is not None:
                if value.lower() != segment.literal.lower():
                    return None
            elif not value:
                return None
            else:
                values[segment.name] = value
        return values

    def _parse_segment(self, text: str) -> _Segment:
        if "{" not in text and "}" not in text:
            if not text:
                raise ConfigError(f"route '{self.template}': empty segment")
            return _Segment(literal=text)
        match = _PARAMETER.match(text)
        if match is None:
            raise ConfigError(
                f"route '{self.template}': segment '{text}' is not supported by devhost "
                "(only literal segments, {name} and a trailing {name?})"
            )
        return _Segment(name=match["name"], optional=bool(match["optional"]))


@dataclass(frozen=True)
class Route:
    """An HTTP-triggered function's route: full template (with the prefix) and allowed methods."""

    function: str
    template: RouteTemplate
    methods: tuple[str, ...] | None  # upper-case; None = any method


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    params: dict[str, str]


class RouteTable:
    """All HTTP routes of an app, most specific first."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes: Sequence[Route] = sorted(routes, key=lambda r: (r.template.precedence, r.template.template))

    def resolve(self, path: str, method: str) -> tuple[RouteMatch | None, list[str]]:
        """The route for ``method`` on ``path``; otherwise (None, methods the path allows) — empty = 404."""
        allowed: list[str] = []
        for route in self.routes:
            params = route.template.match(path)
            if params is None:
                continue
            methods = route.methods or HTTP_METHODS
            if method.upper() in methods:
                return RouteMatch(route, params), []
            allowed.extend(m for m in methods if m not in allowed)
        return None, allowed
