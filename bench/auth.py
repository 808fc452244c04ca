"""Section 9: what checking the caller costs a warm instance on the create path (`python -m bench --auth-only`).

The app's own answer wrapper check (`shared.api.callers.guard`) on a `POST /api/upgrades` request, in process,
against the sandbox: an Entra token (RS256 signature and claims, the tenant's keys cached) side by side with a
named caller key (its Key Vault record cached), after one warm-up request each. Goal: token p50 below 0.5 ms.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import azure.functions as func
import requests

from sandbox.stack import Sandbox
from shared.api.callers import RequestContext, guard
from shared.services import reset_services, services

SAMPLES = 2000


def auth_section(samples: int = SAMPLES) -> list[str]:
    with tempfile.TemporaryDirectory() as workdir, Sandbox(Path(workdir), public_roots=False) as sandbox:
        saved = dict(os.environ)
        os.environ.update(sandbox.environment() | {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
        reset_services()
        try:
            client = sandbox.entra.register_api_client()
            token = _token(sandbox, client.client_id, client.secret)
            key = sandbox.seed_caller_key("bench")
            rows = [
                ("Entra token (Authorization: Bearer)", _p(samples, {"Authorization": f"Bearer {token}"})),
                ("caller key (X-Caller-Key)", _p(samples, {"X-Caller-Key": key})),
            ]
        finally:
            os.environ.clear()
            os.environ.update(saved)
            reset_services()
    lines = ["## 9. Caller check on the create path, warm (ms per request, in process)", ""]
    lines += ["| credential | p50 | p90 | p99 |", "|---|---|---|---|"]
    lines += [f"| {name} | {p50:.3f} | {p90:.3f} | {p99:.3f} |" for name, (p50, p90, p99) in rows]
    lines += ["", f"{samples} requests each after one warm-up; goal: token p50 below 0.5 ms."]
    return lines


def _p(samples: int, headers: dict[str, str]) -> tuple[float, float, float]:
    def once() -> float:
        request = func.HttpRequest("POST", "https://bench.test/api/upgrades", headers=headers, body=b"{}")
        started = time.perf_counter()
        guard(request, RequestContext("CreateUpgrade"), services())
        return (time.perf_counter() - started) * 1000

    once()  # warm: keys or the key record are read once
    times = sorted(once() for _ in range(samples))
    quantiles = statistics.quantiles(times, n=100)
    return statistics.median(times), quantiles[89], quantiles[98]


def _token(sandbox: Sandbox, client_id: str, secret: str) -> str:
    response = requests.post(
        f"{sandbox.entra.url}/{sandbox.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": f"{sandbox.entra.api.identifier_uri}/.default",
        },
        verify=str(sandbox.ca.bundle_path),
        timeout=(5, 30),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])
