"""The batch routes (StartBatch, GetBatch, GetBatchCustomers, CancelBatch): parse, call `shared.batches`, shape
the answer (docs/design.md, "Batches"). The batch queue trigger is shared/api/batch_queue.py."""

from __future__ import annotations

import azure.functions as func

from shared.api.accept import prefers
from shared.api.answers import answer, json_answer, request_base, without_callback_url
from shared.api.batch_input import encode_token, parse_batch_request, parse_customer_query
from shared.api.callers import BATCHES_REPORT, BATCHES_UPGRADE, note_targets, requested_by, require_role
from shared.api.follow_links import follow_links
from shared.api.validation import parse_guid, parse_idempotency_key
from shared.batches.estimate import current_rate, estimated_completion
from shared.batches.export import to_csv
from shared.batches.model import RUNNING_RETRY_AFTER_SECONDS, BatchRecord, Mode
from shared.batches.resource import batch_resource
from shared.correlation import get_logger
from shared.services import Services, services

log = get_logger(__name__)
PAGE_CHOICES = ["application/json", "text/html"]  # JSON unless the client prefers HTML (the first offered wins ties)


def start_batch(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, "StartBatch", _start)


def get_batch(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, "GetBatch", _get)


def get_batch_customers(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, "GetBatchCustomers", _customers)


def cancel_batch(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, "CancelBatch", _cancel)


def _start(req: func.HttpRequest, correlation_id: str) -> func.HttpResponse:
    svc = services()
    hosts = svc.settings.callback_allowed_hosts
    request = parse_batch_request(req.get_body(), req.headers.get("content-type"), hosts, req.params, svc.clock.now())
    require_role(BATCHES_UPGRADE if request.mode == Mode.UPGRADE else BATCHES_REPORT)
    key = parse_idempotency_key(req.headers.get("idempotency-key"))
    base = request_base(req, svc)
    started = svc.batches.start(request, key, correlation_id, base, requested_by())
    note_targets(started.batch_id)
    location = follow_links(svc).batch_location(base, started.batch_id)
    body = batch_resource(started.batch, base)
    return json_answer(202, body, {"Location": location, "Retry-After": str(started.retry_after)})


def _get(req: func.HttpRequest, correlation_id: str) -> func.HttpResponse:
    svc = services()
    batch_id = parse_guid(req.route_params.get("batchId"), "batchId", required=True)
    assert batch_id
    return batch_answer(svc, request_base(req, svc), batch_id, req.headers.get("accept"))


def batch_answer(
    svc: Services, base: str, batch_id: str, accept: str | None = None, *, followed: bool = False
) -> func.HttpResponse:
    """What GET /api/batches/{id} and its follow link answer: 200 when done, else 202 + Location + Retry-After;
    to a client that prefers text/html (a browser), 200 with the progress page. `followed`: asked through the
    follow link, so the page's CSV link is a follow link too (else the keyed customers route), and the callback
    URL is null: it may carry a SAS signature that a link holder must not learn."""
    batch = svc.batches.read(batch_id)
    return _batch_response(svc, base, batch, accept, followed=followed)


def _batch_response(
    svc: Services, base: str, batch: BatchRecord, accept: str | None = None, *, followed: bool = False
) -> func.HttpResponse:
    estimate = None
    if not batch.is_done:
        estimate = estimated_completion(
            batch, svc.clock.now(), current_rate(svc.table, svc.settings.batch_calls_per_minute)
        )
    resource = batch_resource(batch, base, estimate)
    if followed:
        resource = without_callback_url(resource)
    if prefers(accept, PAGE_CHOICES) == "text/html":
        from shared.api import progress_page  # noqa: PLC0415 - loads for browsers only
        from shared.batches.reasons import top_reasons  # noqa: PLC0415

        csv_url = (
            follow_links(svc).batch_customers_location(base, batch.batch_id) if followed else resource["customersUri"]
        )
        refresh = None if batch.is_done else RUNNING_RETRY_AFTER_SECONDS
        page = progress_page.render(resource, top_reasons(svc.batch_store, batch.batch_id), csv_url, refresh)
        return progress_page.page_response(page)
    if batch.is_done:
        return json_answer(200, resource, {})
    location = follow_links(svc).batch_location(base, batch.batch_id)
    return json_answer(202, resource, {"Location": location, "Retry-After": str(RUNNING_RETRY_AFTER_SECONDS)})


def batch_csv_answer(svc: Services, batch_id: str) -> func.HttpResponse:
    """The follow link of the batch's CSV: always the whole batch as CSV, as a download (a browser's click sends
    a browser Accept, so the link itself says what it answers)."""
    svc.batches.read(batch_id)  # 404 for an unknown batch
    body = to_csv(svc.batch_store.all_rows(batch_id))
    headers = {
        "Content-Disposition": f'attachment; filename="batch-{batch_id}.csv"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return func.HttpResponse(body, status_code=200, headers=headers, mimetype="text/csv", charset="utf-8")


def _cancel(req: func.HttpRequest, correlation_id: str) -> func.HttpResponse:
    svc = services()
    batch_id = parse_guid(req.route_params.get("batchId"), "batchId", required=True)
    assert batch_id
    from shared.batches.cancel import BatchCancel  # noqa: PLC0415 - with the storage SDK, on this route only

    note_targets(batch_id)
    batch = BatchCancel(svc.batch_store, svc.batch_queue, svc.batch_completion, svc.clock).cancel(
        batch_id, requested_by()
    )
    return _batch_response(svc, request_base(req, svc), batch)


def _customers(req: func.HttpRequest, correlation_id: str) -> func.HttpResponse:
    svc = services()
    batch_id = parse_guid(req.route_params.get("batchId"), "batchId", required=True)
    assert batch_id
    query = parse_customer_query(req.params)
    svc.batches.read(batch_id)  # 404 for an unknown batch
    if prefers(req.headers.get("accept"), ["application/json", "text/csv"]) == "text/csv":
        body = to_csv(svc.batch_store.all_rows(batch_id, query.outcome))
        return func.HttpResponse(body, status_code=200, mimetype="text/csv", charset="utf-8")
    rows = svc.batch_store.query(batch_id, query.outcome, query.after, query.top + 1)
    token = encode_token(rows[query.top - 1].customer_id) if len(rows) > query.top else None
    return json_answer(200, {"items": [r.to_item() for r in rows[: query.top]], "continuationToken": token}, {})
