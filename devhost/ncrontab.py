"""NCRONTAB schedules as the Functions timer trigger reads them: six fields, seconds first, in UTC.

``{second} {minute} {hour} {day} {month} {day-of-week}``; each field is ``*``, a value, a range ``a-b``, a
step ``*/n`` or ``a-b/n``, or a comma list of those; months and days may be named (``Jan``, ``Mon``), Sunday
is 0 (7 is accepted too). As in NCrontab (the library the host uses), a time matches when *every* field
matches, day and day-of-week included (Vixie cron would take either). A small parser rather than a
dependency: croniter puts seconds last and ORs day with day-of-week, both unlike NCRONTAB.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from devhost.errors import ConfigError

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (low, high, names) per field
_FIELDS = ((0, 59, ()), (0, 59, ()), (0, 23, ()), (1, 31, ()), (1, 12, _MONTHS), (0, 7, _DAYS))
_SEARCH_LIMIT = timedelta(days=366 * 5)


@dataclass(frozen=True)
class Schedule:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        parts = expression.split()
        if len(parts) != 6:
            raise ConfigError(
                f"The schedule expression '{expression}' was not recognized as a valid cron expression "
                "(NCRONTAB needs six fields: second minute hour day month day-of-week)"
            )
        try:
            sets = [_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        except ValueError as exc:
            raise ConfigError(f"The schedule expression '{expression}' is not valid: {exc}") from None
        weekdays = frozenset(d % 7 for d in sets[5])
        return cls(expression, sets[0], sets[1], sets[2], sets[3], sets[4], weekdays)

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment`` (UTC, whole seconds)."""
        t = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        limit = t + _SEARCH_LIMIT
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0)
            elif t.day not in self.days or (t.isoweekday() % 7) not in self.weekdays:
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                return t
        raise ConfigError(f"The schedule expression '{self.expression}' has no occurrence in five years")


def _field(text: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"step {step_text!r} must be at least 1")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first_text, last_text = base.split("-", 1)
            first, last = _value(first_text, low, names), _value(last_text, low, names)
        else:
            first = _value(base, low, names)
            last = high if step_text else first
        if not low <= first <= last <= high:
            raise ValueError(f"{item!r} is outside {low}-{high}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _value(text: str, low: int, names: tuple[str, ...]) -> int:
    lowered = text.strip().lower()
    if lowered[:3] in names and lowered.isalpha():
        return names.index(lowered[:3]) + low
    if not lowered.isdigit():
        raise ValueError(f"{text!r} is not a number")
    return int(lowered)
