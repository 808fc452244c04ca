"""`make bench`: the app against a naive relay, on loopback against the sandbox. Prints a Markdown report.

    python -m bench [--quick] [--only-scale | --fleet-only | --routes-only | --auth-only]

Numbers depend on the machine; bench/README.md keeps the ones measured where this was written.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench import fleet, routes_under_batch
from bench.measure import FUNCTIONS, calls_per_thousand, cold_start, import_costs, overhead, status_calls
from bench.scale_report import scale_out_section, throughput_section
from bench.stack import ROOT, Stack, local_stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, for a smoke run")
    parser.add_argument("--only-scale", action="store_true", help="only sections 5 and 6 (several instances)")
    parser.add_argument("--fleet-only", action="store_true", help="only section 7, the whole fleet")
    parser.add_argument("--routes-only", action="store_true", help="only section 8, every route beside a batch")
    parser.add_argument("--auth-only", action="store_true", help="only section 9, the caller check (token vs key)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the report is the output; the app's per-request lines would drown it
    runs = (50, 20) if args.quick else (300, 100)
    started = time.perf_counter()
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform(terse=True)}",
        "",
    ]
    if args.auth_only:
        from bench.auth import auth_section

        lines += auth_section()
    elif args.routes_only:
        lines += _routes_section()
    elif not args.fleet_only:
        with local_stack() as stack:
            # Sections 5 and 6 run first (before section 4 turns on Azurite's wire log, which slows storage).
            scale = scale_out_section(stack, quick=args.quick) + throughput_section(stack, quick=args.quick)
            if args.only_scale:
                lines += scale
            else:
                lines += _single_instance_sections(stack, runs) + scale
    if not (args.only_scale or args.routes_only or args.auth_only):
        lines += _fleet_section(customers=1000 if args.quick else 2000)
    if not (args.only_scale or args.fleet_only or args.routes_only or args.auth_only):
        lines += _routes_section()
        from bench.auth import auth_section

        lines += auth_section()
    lines += ["", f"Benchmark wall time: {time.perf_counter() - started:.0f} s."]
    report = "\n".join(lines)
    print(report)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.md").write_text(report + "\n")
    print(f"\n(written to {Path(results / 'latest.md').relative_to(ROOT)})", file=sys.stderr)


def _single_instance_sections(stack: Stack, runs: tuple[int, int]) -> list[str]:
    sections = _overhead_section(stack, runs) + _calls_section(stack) + _cold_start_section(stack)
    stack.record_storage_wire()
    return sections + _status_calls_section(stack)


def _overhead_section(stack: Stack, runs: tuple[int, int]) -> list[str]:
    lines = ["## 1. Warm per-request overhead over the bare Partner Center round-trip (ms)", ""]
    lines += ["| Partner Center latency | storage latency | bare p50 | bare p99 | app p50 | app p99 | overhead p50 "
              "| overhead p99 | with Idempotency-Key: overhead p50 | p99 | naive relay p50 | p99 |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for latency, storage, count in ((0, 0, runs[0]), (100, 0, runs[1]), (0, 5, runs[1])):
        o = overhead(stack, latency, count, storage_ms=storage)
        lines.append(
            f"| {latency} ms | {storage} ms | {o.bare_p50:.1f} | {o.bare_p99:.1f} "
            f"| {o.app_p50:.1f} | {o.app_p99:.1f} "
            f"| {o.app_p50 - o.bare_p50:.1f} | {o.app_p99 - o.bare_p99:.1f} "
            f"| {o.keyed_p50 - o.bare_p50:.1f} | {o.keyed_p99 - o.bare_p99:.1f} "
            f"| {o.naive_p50:.1f} | {o.naive_p99:.1f} |"
        )
    lines += ["", "Bare = eligibility + create on one keep-alive session with a ready token. App = "
              "CreateUpgrade.main: validation, the same two calls, then 4 storage writes in 2 sequential round "
              "trips: the two list-index upserts and the first check's queue message side by side, then the "
              "record (its index stays first). An Idempotency-Key adds its claim before Partner Center (1 round "
              "trip) and its completion beside the record's writes. App, keyed and bare samples are taken in "
              "turns; the naive relay (one create, no eligibility, no record) pays its credential, Key Vault "
              "reads and token exchange on every request. Storage latency 5 ms: every storage request reaches "
              "Azurite 5 ms late (bench/latency_proxy.py), as Azure Storage is a few ms away in-region: the "
              "overhead is then about 2 x 5 ms (4 x 5 ms if the writes ran one after another) plus the CPU of "
              "4 SDK calls.", ""]  # fmt: skip
    return lines


def _calls_section(stack: Stack) -> list[str]:
    lines = ["## 2. Outside calls for 1,000 create requests from 32 threads", ""]
    lines += ["| | wall s | Key Vault reads | token exchanges | managed-identity tokens | Partner Center calls "
              "| 202s |", "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    app, naive = calls_per_thousand(stack)
    for c in (app, naive):
        lines.append(
            f"| {c.name} | {c.seconds:.1f} | {c.key_vault_reads} | {c.token_exchanges} | {c.identity_tokens} "
            f"| {c.partner_center_calls} | {c.accepted} |"
        )
    lines.append(
        f"| ratio naive/app | {naive.seconds / app.seconds:.1f}x "
        f"| {naive.key_vault_reads / app.key_vault_reads:.0f}x "
        f"| {naive.token_exchanges / app.token_exchanges:.0f}x | "
        f"{naive.identity_tokens / max(app.identity_tokens, 1):.0f}x | "
        f"{naive.partner_center_calls / app.partner_center_calls:.1f}x | |"
    )
    lines += ["", "The app's Partner Center calls include the eligibility check docs/design.md asks for (2 per "
              "create); the naive relay skips it. Key Vault reads count the three SAM secrets.", ""]  # fmt: skip
    return lines


def _cold_start_section(stack: Stack) -> list[str]:
    lines = ["## 3. Cold start", "", "### Import of each function's module (median of 5, ms)", ""]
    lines += ["| module | import ms (load) | modules loaded | its adapter, imported by the first call | ms "
              "| modules | SDKs loaded by either |", "|---|---:|---:|---|---:|---:|---|"]  # fmt: skip
    for cost in import_costs():
        load, first = cost.at_load, cost.first_call
        if first is None:
            lines.append(f"| {load.name} | {load.millis:.0f} | {load.modules} | | | | (the worker has it loaded) |")
            continue
        heavy = ", ".join(sorted({*load.heavy, *first.heavy})) or "none"
        lines.append(
            f"| {load.name} | {load.millis:.1f} | {load.modules} | {first.name} | {first.millis:.0f} "
            f"| {first.modules} | {heavy} |"
        )
    lines += ["", "`python -X importtime -c 'import azure.functions; import <module>'`, cumulative time of the "
              "module in a new process with azure.functions loaded first, as Microsoft's worker has it before it "
              "loads a function. A function's `main` imports its adapter (shared/api) on the first call, so "
              "loading the twelve functions costs almost nothing beyond azure.functions; a first call pays for "
              "its own adapter only, and the SDKs load when a collaborator is first built.", ""]  # fmt: skip
    lines += ["### New process to the first 202 (median of 5, seconds)", ""]
    cold = cold_start(stack)
    imports = cold.imports_at_load + cold.imports_in_first_request
    return [
        *lines,
        f"| total | interpreter start | load the {len(FUNCTIONS)} functions | first request | imports at load "
        "| imports during first request | import share |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {cold.total:.2f} | {cold.interpreter:.2f} | {cold.load:.2f} | {cold.first_request:.2f} "
        f"| {cold.imports_at_load:.2f} | {cold.imports_in_first_request:.2f} | {imports / cold.total:.0%} |",
        "",
        "Imports from `python -X importtime` (top-level cumulative). SDKs are imported lazily when a "
        "collaborator is first built (shared/services.py) or a handler first needs them (shared/api), so "
        "loading the functions costs azure.functions and the app's light modules; the first request pays for "
        "the SDKs it needs plus three Key Vault reads, one token exchange, two Partner Center calls and four "
        "storage writes; its first HTTPS connection parses the CA bundle, once for all the others "
        "(shared/outbound_http.py).",
        "",
    ]


def _status_calls_section(stack: Stack) -> list[str]:
    lines = ["## 4. Partner Center status calls per tracked upgrade (default schedule, virtual time)", ""]
    lines += ["| upgrade lasts | app | once-a-minute poller | saved |", "|---|---:|---:|---:|"]
    for label, minutes in (("5 min", 5), ("30 min", 30), ("6 h", 360)):
        calls = status_calls(stack, stack.clock, minutes)
        lines.append(f"| {label} | {calls} | {minutes} | {1 - calls / minutes:.0%} |")
    return [*lines, ""]


def _fleet_section(customers: int) -> list[str]:
    """Section 7 on a stack of its own: the sandbox lists exactly the fleet."""
    lines = [f"## 7. The whole fleet: {customers:,} customers, throttle {fleet.THROTTLE_PER_MINUTE:,} calls/min, "
             f"{fleet.LATENCY * 1000:.0f} ms per call (virtual time)", ""]  # fmt: skip
    with local_stack() as stack:
        stack.record_storage_wire()
        stack.clock.freeze()
        try:
            report_fleet = stack.sandbox.add_fleet(customers, seed=2026)
            bound = fleet.lower_bound(customers, 100)
            rows = [
                fleet.app_report(stack, report_fleet),
                fleet.script(stack, report_fleet, "sequential script", threads=1),
                fleet.script(stack, report_fleet, "naive loop, 16 threads", threads=16),
            ]
            upgrade_fleet = stack.sandbox.add_fleet(customers // 2, seed=2027, complete_after=300)
            upgrade = fleet.app_upgrade(stack, upgrade_fleet)
        finally:
            stack.clock.thaw()
            stack.sandbox.partner_center.throttle(None)
    lines += ["| | virtual s | x bound | Partner Center calls | 429s | 429 share | lost or failed | checked twice |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for row in rows:
        lines.append(
            f"| {row.name} | {row.seconds:.1f} | {row.seconds / bound:.2f} | {row.calls} | {row.throttled} "
            f"| {row.throttled / row.calls:.2%} | {row.failures} | {row.duplicates} |"
        )
    lines += ["", f"Lower bound: (pages + {customers:,} eligibility calls) / {fleet.THROTTLE_PER_MINUTE:,} per minute "
              f"= {bound:.1f} s. PARTNER_CENTER_BATCH_CALLS_PER_MINUTE={fleet.CEILING_PER_MINUTE}.", ""]  # fmt: skip
    u = upgrade
    lines += [f"Upgrade batch over {u.customers:,} customers (upgrades complete 5 min after creation): "
              f"{u.creates} creates for {u.eligible} eligible customers, {u.customers_created_twice} created twice; "
              f"{u.tracked} upgrades tracked with {u.status_calls} status calls "
              f"({u.status_calls / max(u.tracked, 1):.2f} per upgrade, at most {u.status_calls_max}; section 4: "
              f"3 for a 5-minute upgrade); {u.seconds:.0f} s virtual; outcomes {u.counts}.", ""]  # fmt: skip
    return lines


def _routes_section() -> list[str]:
    """Section 8 on a stack of its own, in real time: one instance process, a batch and status checks."""
    with local_stack() as stack, tempfile.TemporaryDirectory(prefix="bench-routes-") as work:
        return routes_under_batch.section(routes_under_batch.measure(stack.sandbox, stack.azurite.connection_string,
                                                                     Path(work)))  # fmt: skip


if __name__ == "__main__":
    main()
