"""HTTP trigger route templates, matched the way ASP.NET Core routing does for the Functions host.

Supported: literal segments (case-insensitive), ``{name}``, optional ``{name?}``, defaults
``{name=value}``, catch-all ``{*name}``, and inline constraints ``{name:int}``, ``:long``, ``:guid``,
``:alpha``, ``:bool``, ``:double``/``:float``/``:decimal``, ``:min(n)``, ``:max(n)``, ``:range(a,b)``,
``:minlength(n)``, ``:maxlength(n)``, ``:length(n)``/``:length(a,b)``, ``:regex(expr)`` (combinable).
When several routes match, the most specific wins (literal > constrained > plain > optional > catch-all).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from devhost.errors import ConfigError

_PARAMETER = re.compile(r"^\{(?P<body>[^{}]+)\}$")
_NAME = re.compile(r"^(?P<star>\*{1,2})?(?P<name>[A-Za-z_][A-Za-z0-9_]*)")
_CONSTRAINT = re.compile(r":(?P<name>[A-Za-z]+)(?:\((?P<args>(?:[^()]|\([^()]*\))*)\))?")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def _integer(low: int, high: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        return re.fullmatch(r"-?\d+", value) is not None and low <= int(value) <= high

    return check


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return value.strip().lower() not in ("nan", "inf", "-inf", "infinity", "-infinity")


def _constraint(name: str, args: str | None, template: str) -> Callable[[str], bool]:
    simple: dict[str, Callable[[str], bool]] = {
        "int": _integer(*_INT32),
        "long": _integer(*_INT64),
        "guid": _is_guid,
        "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
        "bool": lambda v: v.lower() in ("true", "false"),
        "double": _is_number,
        "float": _is_number,
        "decimal": _is_number,
    }
    key = name.lower()
    if key in simple and args is None:
        return simple[key]
    try:
        numbers = [int(a) for a in (args or "").split(",")] if key != "regex" else []
        if key == "min" and len(numbers) == 1:
            return lambda v: _integer(*_INT64)(v) and int(v) >= numbers[0]
        if key == "max" and len(numbers) == 1:
            return lambda v: _integer(*_INT64)(v) and int(v) <= numbers[0]
        if key == "range" and len(numbers) == 2:
            return lambda v: _integer(*_INT64)(v) and numbers[0] <= int(v) <= numbers[1]
        if key == "minlength" and len(numbers) == 1:
            return lambda v: len(v) >= numbers[0]
        if key == "maxlength" and len(numbers) == 1:
            return lambda v: len(v) <= numbers[0]
        if key == "length" and len(numbers) in (1, 2):
            return lambda v: numbers[0] <= len(v) <= numbers[-1]
        if key == "regex" and args:
            pattern = re.compile(args, re.IGNORECASE)
            return lambda v: pattern.search(v) is not None
    except (ValueError, re.error):
        pass
    raise ConfigError(f"route '{template}': the constraint '{name}' could not be resolved")


@dataclass(frozen=True)
class _Segment:
    literal: str | None = None
    name: str = ""
    constraints: tuple[Callable[[str], bool], ...] = ()
    optional: bool = False
    default: str | None = None
    catch_all: bool = False

    @property
    def precedence(self) -> int:
        if self.literal is not None:
            return 1
        if self.catch_all:
            return 5
        if self.optional or self.default is not None:
            return 4
        return 2 if self.constraints else 3

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.constraints)


class RouteTemplate:
    """A parsed route template such as ``api/upgrades/{upgradeId:guid}``."""

    def __init__(self, template: str) -> None:
        self.template = template.strip("/")
        self.segments = tuple(self._parse_segment(s) for s in self.template.split("/")) if self.template else ()
        for i, segment in enumerate(self.segments):
            later = self.segments[i + 1 :]
            if segment.catch_all and later:
                raise ConfigError(f"route '{template}': a catch-all parameter must be the last segment")
            if (segment.optional or segment.default is not None) and any(s.literal is not None for s in later):
                raise ConfigError(f"route '{template}': an optional parameter must be at the end of the template")
        names = [s.name for s in self.segments if s.literal is None]
        if len(set(names)) != len(names):
            raise ConfigError(f"route '{template}': a parameter name appears more than once")

    @property
    def precedence(self) -> tuple[int, ...]:
        return tuple(s.precedence for s in self.segments)

    def match(self, path: str) -> dict[str, str] | None:
        """Route values for a request path (percent-encoded, without query), or None."""
        parts = [p for p in path.strip("/").split("/")] if path.strip("/") else []
        values: dict[str, str] = {}
        for i, segment in enumerate(self.segments):
            if segment.catch_all:
                rest = unquote("/".join(parts[i:]))
                if rest and not segment.accepts(rest):
                    return None
                if rest or segment.default is not None:
                    values[segment.name] = rest or str(segment.default)
                return values
            if i >= len(parts):
                if segment.literal is None and (segment.optional or segment.default is not None):
                    if segment.default is not None:
                        values[segment.name] = segment.default
                    continue
                return None
            value = unquote(parts[i])
            if segment.literal is not None:
                if value.lower() != segment.literal.lower():
                    return None
            elif not value or not segment.accepts(value):
                return None
            else:
                values[segment.name] = value
        return values if len(parts) <= len(self.segments) else None

    def _parse_segment(self, text: str) -> _Segment:
        if "{" not in text and "}" not in text:
            if not text:
                raise ConfigError(f"route '{self.template}': empty segment")
            return _Segment(literal=text)
        match = _PARAMETER.match(text)
        if match is None:
            raise ConfigError(f"route '{self.template}': segment '{text}' is not supported (one parameter per segment)")
        body = match["body"]
        name_match = _NAME.match(body)
        if name_match is None:
            raise ConfigError(f"route '{self.template}': invalid parameter '{text}'")
        rest = body[name_match.end() :]
        default: str | None = None
        optional = False
        if "=" in rest and not rest.rstrip().endswith(")"):
            rest, default = rest.split("=", 1)
        if rest.endswith("?"):
            rest, optional = rest[:-1], True
        constraints = []
        position = 0
        for constraint in _CONSTRAINT.finditer(rest):
            if constraint.start() != position:
                break
            constraints.append(_constraint(constraint["name"], constraint["args"], self.template))
            position = constraint.end()
        if position != len(rest):
            raise ConfigError(f"route '{self.template}': invalid parameter '{text}'")
        return _Segment(
            name=name_match["name"],
            constraints=tuple(constraints),
            optional=optional,
            default=default,
            catch_all=bool(name_match["star"]),
        )


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
            if route.methods is None or method.upper() in route.methods:
                return RouteMatch(route, params), []
            allowed.extend(m for m in route.methods if m not in allowed)
        return None, allowed
