"""`make bench` sections 5 and 6: several instances with one killed, and status-check throughput per instance
count. Markdown lines for the report."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

from bench.scale_out import ScaleOutPlan, ScaleOutResult, run_scale_out
from bench.stack import Stack
from bench.throughput import Throughput, status_throughput


def scale_out_section(stack: Stack, *, quick: bool) -> list[str]:
    plan = ScaleOutPlan(
        upgrades=60 if quick else 600, spread_seconds=4 if quick else 20, callers=12 if quick else 24,
        deadline_seconds=60 if quick else 180,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as work:
        r = run_scale_out(
            plan, stack.sandbox, stack.azurite.connection_string, stack.sam.callback_signing_key, Path(work)
        )
    answers = sum((s.answers for s in r.submissions), Counter[str]())
    return [
        f"## 5. Several instances, one killed ({plan.instances} instances, {plan.upgrades} upgrades)",
        "",
        "| instances | upgrades | 202s | creates | duplicates | lost | stuck claims | callbacks missing "
        "| callback duplicates | poison | wall s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {plan.instances} (1 killed) | {plan.upgrades} | {len(r.accepted)} | {r.creates} | {r.duplicate_creates} "
        f"| {r.lost} | {r.stuck_claims} | {r.callbacks_missing} | {r.callback_duplicates} | {len(r.poison)} "
        f"| {r.wall_seconds:.1f} |",
        "",
        _scale_out_notes(plan, r, answers),
        "",
    ]


def _scale_out_notes(plan: ScaleOutPlan, r: ScaleOutResult, answers: Counter[str]) -> str:
    twice = sum(1 for s in r.submissions) - plan.upgrades
    faults = ", ".join(f"{n} {kind}" for kind, n in sorted(r.faults_injected.items()))
    return (
        f"{len(r.submissions)} submissions ({twice} keys sent twice at once, to two instances) over "
        f"{plan.spread_seconds:g} s from {plan.callers} callers; instance 0 SIGKILLed after half had started, "
        f"while it answered {r.requests_in_flight_at_kill} request(s). Partner Center faults injected: {faults} "
        f"({plan.fault_rate:.0%} of calls). Caller answers: {dict(sorted(answers.items()))} (a connection error "
        f"or a retryable answer is retried on the next instance with the same key). "
        f"{r.keys_retried_after_takeover} key(s) answered 409 (key in flight) after the kill, then 202; "
        f"{r.claims_taken_over} claim(s) left by the killed instance were taken over after the "
        f"{plan.claim_lease_seconds} s claim lease (survivors' logs); "
        f"{r.redelivered_messages} status message(s) came back to the survivors (dequeue count 2 or more: after "
        f"the {plan.queue_lease_seconds:g} s queue lease of the killed instance, or after the 30 s visibilityTimeout "
        f"of the {r.failed_invocations} failed run(s)). Final: {dict(Counter(r.final.values()))}; the status queue "
        f"was empty {r.drain_seconds:.0f} s after the last callback (left: {r.status_queue_left})."
    )


def throughput_section(stack: Stack, *, quick: bool) -> list[str]:
    """Best of two runs per instance count: the machine is shared, and contention only ever slows a run."""
    checks = {1: 150, 2: 300, 3: 450} if quick else {1: 300, 2: 600, 3: 900}
    rows: list[Throughput] = []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-rate-") as work:
        for count, n in checks.items():
            runs = [status_throughput(stack.sandbox, stack.azurite, Path(work), count, n) for _ in range(2)]
            rows.append(max(runs, key=lambda r: r.per_second))
    load = max(load, os.getloadavg()[0])
    one = rows[0].per_second
    cores = os.cpu_count() or 1
    lines = [
        "## 6. Status checks per second by instance count (Partner Center latency 100 ms)",
        "",
        f"| instances | checks | checks/s | scaling | CPU ms per check | cores busy (of {cores}) "
        f"| CPU-bound ceiling here, checks/s | instances' CPU s | sandbox + Azurite CPU s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.instances} | {row.checks} | {row.per_second:.0f} | {row.per_second / one:.2f}x "
            f"| {row.cpu_ms_per_check:.1f} | {row.cores_busy:.2f} | {1000 * cores / row.cpu_ms_per_check:.0f} "
            f"| {row.instance_cpu:.1f} | {row.other_cpu:.1f} |"
        )
    threads = min(32, cores + 4)
    return [
        *lines,
        "",
        *_latency_bound_rows(stack, quick=quick),
        f"Best of 2 runs per row; 1-minute load average up to {load:.1f} during the runs (other work shares this "
        f"machine). Each instance runs at most {threads} checks at once: the Python worker's thread pool "
        f"(PYTHON_THREADPOOL_THREAD_COUNT unset = min(32, cores + 4)), although host.json lets the queue listener "
        f"hold batchSize 16 + newBatchThreshold 8 = 24 messages; so one instance tops out near {threads} / (0.1 s "
        "+ storage time) checks/s, a latency bound that each added instance brings again. The CPU-bound ceiling "
        f"is {cores} cores / CPU per check (all processes: instances, sandbox, Azurite).",
        "",
    ]


def _latency_bound_rows(stack: Stack, *, quick: bool) -> list[str]:
    """The same at 1 s Partner Center latency: the instances wait far more than they compute, so the CPU of this
    machine is not the limit, and what scales is the per-instance latency bound."""
    checks = {1: 30, 2: 60, 3: 90} if quick else {1: 60, 2: 120, 3: 180}
    with tempfile.TemporaryDirectory(prefix="bench-rate-") as work:
        rows = [
            status_throughput(stack.sandbox, stack.azurite, Path(work), c, n, latency=1.0) for c, n in checks.items()
        ]
    one = rows[0].per_second
    lines = [
        "Partner Center latency 1 s (one run each):",
        "",
        "| instances | checks | checks/s | scaling | cores busy |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.instances} | {row.checks} | {row.per_second:.1f} | {row.per_second / one:.2f}x "
            f"| {row.cores_busy:.2f} |"
        )
    return [*lines, ""]
