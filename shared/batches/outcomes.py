"""One customer's batch work, turned into its outcome (docs/design.md, "Batches", "Outcomes").

`report`: eligibility says eligible / notEligible (with the reason) / names an upgrade (hasUpgrade).
`upgrade`: the create path of POST /api/upgrades (`UpgradeService.create_for_batch`) with an MS-RequestId derived
from batch and customer; the upgrade is then tracked by UpgradeStatus and the row waits `upgrading` for it.
A 4xx that is not "not eligible" is `error` at once; a 429 or a transient failure is not an outcome yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.batches.links import BatchLinks
from shared.batches.model import BatchRecord, Mode, Outcome, Settlement, batch_request_id
from shared.batches.pacing import Pacer, WaitAllowance
from shared.clock import Clock
from shared.correlation import current_correlation_id
from shared.errors import NotEligible, PartnerCenterRejected, PartnerCenterThrottled, UpgradeError
from shared.partner_center.budget import Budget
from shared.partner_center.client import PartnerCenterClient
from shared.storage.records import UpgradeStore
from shared.upgrades.create import UpgradeService
from shared.upgrades.model import State, UpgradeRecord, UpgradeRequest

# An upgrade Partner Center created is recorded even on a row a cancel reached while the create was on the wire
# (the one call a cancel cannot stop): the row shows the upgrade, and tracking takes it to its end, also in a
# batch that is Cancelled already (a final status never goes back; docs/design.md "Campaigns").
CREATED_FROM = frozenset({Outcome.PENDING, Outcome.CANCELLED})
BUDGET_SECONDS = 120.0  # per customer; pacing waits count (at most pacing.MAX_WAIT_PER_MESSAGE per message)
ATTEMPTS_PER_CALL = 2  # in-process retries of a 5xx or timeout; the queue retries the rest


@dataclass(frozen=True)
class Transient:
    """Not decided yet: the work is retried later (and becomes `error` when its retries are used up)."""

    reason: str


@dataclass(frozen=True)
class Throttled:
    retry_after: float


Result = Settlement | Transient | Throttled


class BatchCancelled(Exception):
    """The batch was cancelled: raised by the gate before a Partner Center call, so the call is never made."""


class CustomerWork:
    def __init__(  # noqa: PLR0917 - the collaborators of one use case, built in shared/services.py
        self,
        partner_center: PartnerCenterClient,
        upgrades: UpgradeService,
        records: UpgradeStore,
        links: BatchLinks,
        pacer: Pacer,
        clock: Clock,
    ) -> None:
        self._pc = partner_center
        self._upgrades = upgrades
        self._records = records
        self._links = links
        self._pacer = pacer
        self._clock = clock

    def run(
        self,
        batch: BatchRecord,
        customer_id: str,
        allowance: WaitAllowance,
        cancelled: Callable[[], bool] | None = None,
    ) -> Result:
        """Raises `PaceDeferred` when the pace says wait longer than the message's `allowance` has left, and
        `BatchCancelled` when `cancelled` (asked right before every Partner Center call, after its pace slot) says
        the batch was cancelled."""

        def gate() -> None:
            self._pacer.acquire(allowance)
            if cancelled is not None and cancelled():
                raise BatchCancelled(batch.batch_id)

        budget = Budget(BUDGET_SECONDS, self._clock, ATTEMPTS_PER_CALL, wait_when_throttled=False, gate=gate)
        try:
            if batch.mode == Mode.REPORT:
                return self._report(customer_id, batch, budget)
            return self._upgrade(customer_id, batch, budget)
        except NotEligible as refused:
            fault = refused.partner_center
            return Settlement(customer_id, Outcome.NOT_ELIGIBLE, (fault and fault.description) or refused.detail)
        except PartnerCenterThrottled as throttled:
            return Throttled(float(throttled.retry_after or 1))
        except PartnerCenterRejected as rejected:
            return Settlement(customer_id, Outcome.ERROR, refusal_reason(rejected))
        except UpgradeError as error:
            return Transient(error.detail)

    def _report(self, customer_id: str, batch: BatchRecord, budget: Budget) -> Settlement:
        found = self._pc.check_eligibility(customer_id, batch.product_family, budget)
        if found.upgrade_id:
            return Settlement(customer_id, Outcome.HAS_UPGRADE, upgrade_id=found.upgrade_id)
        if found.is_eligible:
            return Settlement(customer_id, Outcome.ELIGIBLE)
        return Settlement(customer_id, Outcome.NOT_ELIGIBLE, found.reason or "Partner Center gave no reason")

    def _upgrade(self, customer_id: str, batch: BatchRecord, budget: Budget) -> Settlement:
        request = UpgradeRequest(customer_id, batch.product_family, None)
        request_id = batch_request_id(batch.batch_id, customer_id)
        accepted = self._upgrades.create_for_batch(
            request, request_id, current_correlation_id(), budget, requested_by=batch.requested_by
        )
        upgrade_id = accepted.upgrade_id
        self._links.add(upgrade_id, batch.batch_id, customer_id)  # before the row says upgrading: see links.py
        record = self._records.get(upgrade_id)
        if record is not None and record.is_final:  # it finished before the link existed
            return final_settlement(record, CREATED_FROM)
        return Settlement(customer_id, Outcome.UPGRADING, upgrade_id=upgrade_id, from_outcomes=CREATED_FROM)


def final_settlement(record: UpgradeRecord, from_outcomes: frozenset[Outcome]) -> Settlement:
    """A final upgrade as a batch row: Completed is `completed`; Failed and TimedOut are `failed`."""
    if record.status == State.COMPLETED:
        return Settlement(record.customer_id, Outcome.COMPLETED, None, record.upgrade_id, from_outcomes)
    return Settlement(record.customer_id, Outcome.FAILED, _reason(record), record.upgrade_id, from_outcomes)


def _reason(record: UpgradeRecord) -> str:
    error: dict[str, Any] = record.error or {}
    message = error.get("message") or error.get("description")
    return f"{record.status}: {message}" if message else str(record.status)


def refusal_reason(rejected: PartnerCenterRejected) -> str:
    """A row's reason for a customer Partner Center refused: its description and code, without the customer id
    (the row names the customer), so the progress page can count customers refused for the same reason."""
    fault = rejected.partner_center
    if fault is None or not fault.description:
        return f"Partner Center refused this customer: {rejected.detail}"
    return f"Partner Center refused this customer: {fault.description} (code {fault.code or 'none'})"
