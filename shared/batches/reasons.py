"""The most common reasons a batch's customers ended `notEligible` or `error`, for the progress page
(docs/design.md, "Progress page").

Bounded work: one query per outcome, at most `MAX_ROWS` rows each (a batch has at most 5,000 customers), counted
in memory; only the `limit` most common reasons and a few company names for each are kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from shared.batches.model import CustomerRow, Outcome
from shared.batches.store import BatchStore

REASON_OUTCOMES = (Outcome.NOT_ELIGIBLE, Outcome.ERROR)
MAX_ROWS = 5000
TOP = 10
EXAMPLES = 3
NO_REASON = "(no reason given)"


@dataclass(frozen=True)
class ReasonCount:
    outcome: str
    reason: str
    count: int
    examples: tuple[str, ...]  # company names of a few of these customers (as Partner Center spells them)


def top_reasons(store: BatchStore, batch_id: str, limit: int = TOP) -> list[ReasonCount]:
    """The `limit` most common (outcome, reason) pairs of the batch's notEligible and error rows."""
    rows = [row for outcome in REASON_OUTCOMES for row in store.query(batch_id, outcome, None, MAX_ROWS)]
    return count_reasons(rows, limit)


def count_reasons(rows: Iterable[CustomerRow], limit: int = TOP) -> list[ReasonCount]:
    """Most common first; ties in the order first seen."""
    counts: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        key = (str(row.outcome), (row.reason or "").strip() or NO_REASON)
        counts[key] += 1
        names = examples.setdefault(key, [])
        if row.company_name and len(names) < EXAMPLES:
            names.append(row.company_name)
    return [ReasonCount(o, r, n, tuple(examples[(o, r)])) for (o, r), n in counts.most_common(limit)]
