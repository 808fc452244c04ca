"""What `make run` prints once everything is up: the routes, the stand-ins, the demo customers, how to try it."""

from __future__ import annotations

import os
import shlex

from localrun.local_run import LocalRun

DEMO_CUSTOMER = "eligible"
# What the API answers for each demo customer (sandbox/customers.py describes Partner Center's side).
API_OUTCOMES = {
    "eligible": "202; Completed ~20 s after creation",
    "not-eligible": "422 not eligible, with Partner Center's reason",
    "already-upgrading": '202 with the existing upgrade ("existing": true); Completed ~45 s after start-up',
    "slow": "202 after ~2 s per Partner Center call; Completed ~60 s after creation",
    "failing": "202; Failed ~15 s after creation (its line item failed)",
}
ANY_OTHER_CUSTOMER = f"behaves like {DEMO_CUSTOMER}: {API_OUTCOMES[DEMO_CUSTOMER]}"


def banner(stack: LocalRun) -> str:
    url = stack.url
    lines = ["", f"Partner Center Upgrade Functions, running locally in {stack.active_mode} mode ({stack.reason})"]
    lines += [
        f"  POST {url}/api/upgrades              submit an upgrade (202 + Location)",
        f"  GET  {url}/api/follow/upgrades/{{upgradeId}}?customerId=…&expires=…&sig=…",
        "                                      the Location of every 202: a signed follow link, no key needed",
        f"  GET  {url}/api/upgrades/{{upgradeId}}  its status with a key (the body's statusUri)",
        f"  GET  {url}/api/health                configuration, Key Vault, consent, storage, poison queues",
        "  " + keys_line(stack),
    ]
    if stack.active_mode == "real":
        settings = ("KEY_VAULT_URL", "PARTNER_TENANT_ID", "PARTNER_CENTER_BASE_URL")
        lines.append("  Settings: " + ", ".join(f"{name}={os.environ.get(name, '(default)')}" for name in settings))
        lines.append("  Upgrades submitted here are REAL: they go to the Partner Center configured above.")
    if stack.azurite is not None:
        p = stack.azurite.ports
        kind = "in memory" if stack.azurite.location is None else f"data in {stack.azurite.location}"
        lines.append(f"  Storage: Azurite ({kind}) blob {p['blob']}, queue {p['queue']}, table {p['table']}")
    if stack.sandbox is not None:
        lines += _sandbox_lines(stack)
    lines += [f"  Note: {note}" for note in stack.notes]
    lines.append("")
    return "\n".join(lines)


def keys_line(stack: LocalRun) -> str:
    if stack.keys is None:
        return "Host keys (the admin API only; every route checks callers itself): not enforced; make run KEYS=file"
    return f"Host keys (the admin API only; every route checks callers itself): enforced, from {stack.keys_file}"


def _sandbox_lines(stack: LocalRun) -> list[str]:
    from sandbox.customers import DEMO_CUSTOMERS  # noqa: PLC0415 - sandbox mode only

    sandbox = stack.sandbox
    lines = [
        f"  Sandbox: Partner Center {sandbox.partner_center.url}, Entra ID {sandbox.entra.url}, "
        f"Key Vault {sandbox.key_vault.url}"
    ]
    if stack.callbacks is not None:
        port = stack.callbacks.port
        lines.append(f"  Callbacks: {stack.callbacks.url} (allowed host: localhost:{port}; prints each delivery)")
    lines += ["", "  Demo customers (sandbox Partner Center):"]
    lines += [f"    {c.name:<18} {c.customer_id}  {API_OUTCOMES.get(c.name, c.summary)}" for c in DEMO_CUSTOMERS]
    lines.append(f"    {'any other GUID':<18} {'':<36}  {ANY_OTHER_CUSTOMER}")
    if stack.fleet_counts:
        kinds = ", ".join(f"{kind} {count}" for kind, count in stack.fleet_counts.items())
        lines += [
            f"  Fleet: {sum(stack.fleet_counts.values())} generated customers ({kinds});",
            "         `make demo ARGS=--fleet` reports on all customers with a batch and saves the CSV",
        ]
    eligible = next(c for c in DEMO_CUSTOMERS if c.name == DEMO_CUSTOMER)
    body = f'{{"customerId": "{eligible.customer_id}", "productFamily": "Azure"}}'
    key = stack.keys.any_host_key() if stack.keys is not None else None
    key_header = f" -H 'x-functions-key: {key}'" if key else ""
    key_header += f" -H 'X-Caller-Key: {stack.caller_key}'" if stack.caller_key else ""
    lines += [
        "",
        f"  Caller key (every role; local sandbox only): {stack.caller_key}",
        "",
        "  Try it (or `make demo` in another terminal; requests.http has every call):",
        f"    curl -i {stack.url}/api/upgrades -H 'Content-Type: application/json' -H 'Idempotency-Key: try-1'"
        f"{key_header} \\",
        f"         -d {shlex.quote(body)}",
    ]
    return lines


def ready_line(stack: LocalRun, seconds: float) -> str:
    t = stack.timings
    steps = [f"Azurite {t.azurite:.2f} s"] if stack.azurite is not None else []
    steps += [f"sandbox {t.sandbox:.2f} s"] if stack.sandbox is not None else []
    steps.append(f"functions {t.functions:.2f} s")
    return f"ready in {seconds:.1f} s ({', '.join(steps)}) on {stack.url}; press Ctrl-C to stop"
