"""The batch progress page: what `GET /api/batches/{id}` and its follow link answer a browser (docs/design.md,
"Progress page").

Rendered from the batch resource (the JSON body, read with `.get()` so fields a newer resource adds show when
present) and the most common reasons. No script: the chart is HTML/CSS bars, the page reloads itself with
`<meta http-equiv="refresh">` while the batch is not final, and the headers forbid everything but inline styles
and `data:` images. Every value goes through `html.escape`: company names and reasons come from Partner Center.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from string import Template
from typing import Any

import azure.functions as func

from shared.batches.reasons import ReasonCount

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the page's URL carries its signature
    "Cache-Control": "no-store",
}
OPEN_OUTCOMES = ("pending", "upgrading")  # a customer in one of these is not done yet
COLOURS = {
    "pending": "#8a8886", "eligible": "#107c10", "notEligible": "#ca5010", "hasUpgrade": "#0078d4",
    "upgrading": "#5c2d91", "completed": "#107c10", "failed": "#a4262c", "error": "#d13438", "cancelled": "#605e5c",
}  # fmt: skip
OTHER_COLOUR = "#323130"

_PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
$refresh<title>Batch $status: $done of $total</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:56rem;padding:0 1rem;
color:#201f1e}
h1{font-size:1.4rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:1.8rem}
code{font-size:.95em}.muted{color:#605e5c}
.progress{background:#edebe9;border-radius:4px;height:1.4rem;overflow:hidden}
.progress span{display:block;height:100%;background:#0078d4}
table{border-collapse:collapse;width:100%}td,th{padding:.3rem .5rem;text-align:left;vertical-align:top}
th{font-weight:600}tr+tr td{border-top:1px solid #edebe9}td.n{text-align:right;width:4rem}
.chart td.label{width:9rem}.chart td.bar{width:100%}.chart .fill{display:block;height:1rem;min-width:1px}
a.csv{display:inline-block;margin-top:1rem;padding:.5rem 1rem;background:#0078d4;color:#fff;border-radius:4px;
text-decoration:none}
</style>
</head>
<body>
<main>
<h1>Batch <code id="batch-id">$batch_id</code></h1>
<p class="muted"><span id="status">$status</span> &middot; $mode &middot; $family</p>
<div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="$total_value" aria-valuenow="$done">\
<span style="width:$percent%"></span></div>
<p><data id="done" value="$done">$done</data> of <data id="total" value="$total_value">$total</data> customers
done ($percent_text%)$listing</p>
<h2>Outcomes</h2>
<table class="chart">
$chart
</table>
<h2>Most common reasons</h2>
$reasons
<h2>Times</h2>
<table class="times">
$times
</table>
<p><a class="csv" id="csv" href="$csv_url" download="batch-$batch_id.csv">Download the CSV</a></p>
</main>
</body>
</html>
""")


def page_response(body: str) -> func.HttpResponse:
    return func.HttpResponse(body, status_code=200, headers=dict(HEADERS), mimetype="text/html", charset="utf-8")


def render(
    resource: Mapping[str, Any], reasons: Sequence[ReasonCount], csv_url: str, refresh_seconds: int | None
) -> str:
    """The page. `refresh_seconds`: reload after that long (the batch is not final), or None."""
    counts = _counts(resource)
    total = resource.get("total")
    known_total = total if isinstance(total, int) else sum(counts.values())
    done = known_total - sum(counts.get(o, 0) for o in OPEN_OUTCOMES)
    percent = 100.0 * done / known_total if known_total else (0.0 if refresh_seconds else 100.0)
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_seconds)}">\n' if refresh_seconds else ""
    return _PAGE.substitute(
        refresh=refresh,
        batch_id=_e(resource.get("batchId")),
        status=_e(resource.get("status")),
        mode=_e(resource.get("mode")),
        family=_e(resource.get("productFamily")),
        done=done,
        total=known_total if isinstance(total, int) else f"{known_total} so far",
        total_value=known_total,
        percent=f"{percent:.1f}",
        percent_text=f"{percent:.0f}",
        listing="" if isinstance(total, int) else "; still listing the partner's customers",
        chart=_chart(counts, known_total),
        reasons=_reasons(reasons),
        times=_times(resource),
        csv_url=_e(csv_url),
    )


def _counts(resource: Mapping[str, Any]) -> dict[str, int]:
    raw = resource.get("counts")
    items = raw.items() if isinstance(raw, Mapping) else ()
    return {str(name): value for name, value in items if isinstance(value, int)}


def _chart(counts: Mapping[str, int], total: int) -> str:
    rows = []
    for outcome, count in counts.items():
        width = 100.0 * count / total if total else 0.0
        colour = COLOURS.get(outcome, OTHER_COLOUR)
        rows.append(
            f'<tr data-outcome="{_e(outcome)}"><td class="label">{_e(outcome)}</td>'
            f'<td class="bar"><span class="fill" style="width:{width:.1f}%;background:{colour}"></span></td>'
            f'<td class="n"><data value="{count}">{count}</data></td></tr>'
        )
    return "\n".join(rows)


def _reasons(reasons: Sequence[ReasonCount]) -> str:
    if not reasons:
        return '<p class="muted" id="no-reasons">No customer is notEligible or error.</p>'
    rows = ['<table class="reasons">', "<tr><th>Outcome</th><th>Reason</th><th>Customers</th></tr>"]
    for item in reasons:
        examples = f'<br><span class="muted">e.g. {_e(", ".join(item.examples))}</span>' if item.examples else ""
        rows.append(
            f'<tr class="reason"><td>{_e(item.outcome)}</td><td>{_e(item.reason)}{examples}</td>'
            f'<td class="n"><data value="{item.count}">{item.count}</data></td></tr>'
        )
    rows.append("</table>")
    return "\n".join(rows)


def _times(resource: Mapping[str, Any]) -> str:
    rows = [("Created", resource.get("createdAt"))]
    if resource.get("notBefore"):
        rows.append(("Scheduled for", resource.get("notBefore")))
    if resource.get("cancelledAt"):
        rows.append(("Cancelled", resource.get("cancelledAt")))
    if resource.get("completedAt"):
        rows.append(("Completed", resource.get("completedAt")))
    elif resource.get("estimatedCompletionAt"):
        rows.append(("Estimated completion", resource.get("estimatedCompletionAt")))
    rows.append(("Last change", resource.get("updatedAt")))
    if resource.get("fromBatch"):
        rows.append(("Customers from batch", resource.get("fromBatch")))
    return "\n".join(f"<tr><th>{label}</th><td>{_when(value)}</td></tr>" for label, value in rows)


def _when(value: object) -> str:
    """A timestamp as `<time>` in UTC; anything else (an id, an unparsable value) as escaped text."""
    text = "" if value is None else str(value)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return f"<code>{_e(text)}</code>" if text else '<span class="muted">not yet</span>'
    return f'<time datetime="{_e(text)}">{moment:%Y-%m-%d %H:%M:%S} UTC</time>'


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)
