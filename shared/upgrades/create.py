"""Submitting an upgrade: Idempotency-Key -> eligibility -> create -> record and schedule -> `Accepted`.

Once Partner Center has accepted, the caller always gets the 202: recording and scheduling are best effort
here because the Location the caller receives carries the customerId, and a GET on it recovers the upgrade.
Those writes cost two storage round trips in sequence: the list index upserts beside the first check's queue
message (and the Idempotency-Key completion: "The overlap", shared/storage/idempotency.py), then the record
(shared/tracking/tracker.py `start`).
The answer is typed (shared/upgrades/accepted.py); the HTTP adapter renders the 202 with `statusUri` and
`Location` on the base of the request being answered, the first and each replay.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import TYPE_CHECKING, Any

from shared.clock import Clock
from shared.concurrency import submit
from shared.correlation import get_logger
from shared.errors import NotEligible, PartnerCenterFault, UpgradeConflict, UpgradeError
from shared.partner_center.budget import Budget
from shared.partner_center.client import PartnerCenterClient
from shared.settings import Settings
from shared.upgrades.accepted import Accepted
from shared.upgrades.model import State, UpgradeRecord, UpgradeRequest
from shared.upgrades.resource import retry_after_seconds

if TYPE_CHECKING:  # the storage modules (and SDKs) load on the first write, not with this module: cold start
    from shared.storage.idempotency import Claim, Idempotency, StoredAnswer
    from shared.tracking.tracker import Tracker

log = get_logger(__name__)

CREATE_BUDGET_SECONDS = 60.0
# Namespace for MS-RequestId values derived from Idempotency-Keys (uuid5), fixed for this app.
REQUEST_ID_NAMESPACE = uuid.UUID("6c1f3f3e-5d0e-4a49-9a4e-3f4b8f0b7c21")
UPGRADE_IN_PROGRESS_CODE = "900109"  # Partner Center 409: an upgrade for this customer is pending or in progress


class UpgradeService:
    def __init__(
        self,
        settings: Settings,
        partner_center: PartnerCenterClient,
        idempotency: Callable[[], Idempotency],
        tracker: Callable[[], Tracker],
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._pc = partner_center
        self._idempotency = idempotency
        self._tracker = tracker
        self._clock = clock

    def submit(
        self,
        request: UpgradeRequest,
        key: str | None,
        correlation_id: str,
        requested_by: dict[str, Any] | None = None,
    ) -> Accepted:
        if key is None:
            return self._forward(request, str(uuid.uuid4()), correlation_id, None, requested_by=requested_by)
        fingerprint = request.fingerprint()
        request_id = str(uuid.uuid5(REQUEST_ID_NAMESPACE, f"{key}\n{fingerprint}"))
        return self._idempotency().run(
            key,
            fingerprint,
            lambda claim: self._forward(request, request_id, correlation_id, claim, requested_by=requested_by),
            lambda answer: self._replay(request, answer),
        )

    def _replay(self, request: UpgradeRequest, answer: StoredAnswer) -> Accepted:
        log.info("Idempotency-Key seen before with the same body; replaying upgrade %s", answer.body.get("upgradeId"))
        replayed = Accepted.from_stored(answer.body, answer.retry_after)
        self._keep_tracked(request, replayed)
        return replayed

    def _keep_tracked(self, request: UpgradeRequest, replayed: Accepted) -> None:
        """A replay makes sure its upgrade is recorded and tracked, with this request's callbackUrl (the same
        body, so the same URL). The first try's instance may have died after storing this answer and before its
        record and first check were written ("The overlap", shared/storage/idempotency.py): a GET on the Location
        would then recover the upgrade without the callbackUrl, and nobody would call back. An existing record wins
        (`Tracker.start`), so a replay of a tracked upgrade changes nothing. Never raises."""
        now = self._clock.now()
        record = UpgradeRecord.new(
            replayed.upgrade_id,
            replayed.customer_id,
            now,
            location=replayed.partner_center_location,
            correlation_id=replayed.correlation_id,
            callback_url=request.callback_url,
            next_check_at=now + self._settings.first_check_seconds,
        )
        self._tracker().start(record)

    def create_for_batch(
        self,
        request: UpgradeRequest,
        request_id: str,
        correlation_id: str,
        budget: Budget,
        requested_by: dict[str, Any] | None = None,
    ) -> Accepted:
        """The same path as `submit`, for one customer of a batch: its MS-RequestId (derived from batch and
        customer, so a redelivered message never creates twice), its paced, non-waiting budget, and the batch's
        requester as the upgrade's `requestedBy`."""
        return self._forward(request, request_id, correlation_id, None, budget, requested_by=requested_by)

    def _forward(
        self,
        request: UpgradeRequest,
        request_id: str,
        correlation_id: str,
        claim: Claim | None,
        budget: Budget | None = None,
        *,
        requested_by: dict[str, Any] | None = None,
    ) -> Accepted:
        budget = budget or Budget(CREATE_BUDGET_SECONDS, self._clock)
        upgrade_id = self._existing_upgrade(request, budget) if self._settings.check_eligibility else None
        existing = upgrade_id is not None
        if upgrade_id is not None:
            location = f"productUpgrades/{upgrade_id}"
        else:
            upgrade_id, location, existing = self._create(request, request_id, budget)
        now = self._clock.now()
        record = UpgradeRecord.new(
            upgrade_id,
            request.customer_id,
            now,
            location=location,
            correlation_id=correlation_id,
            callback_url=request.callback_url,
            next_check_at=now + self._settings.first_check_seconds,
            requested_by=requested_by,
        )
        accepted = self._accepted(request, record, record.status, existing)
        completing: Future[None] | None = None
        if claim is not None and not existing:  # the overlap: shared/storage/idempotency.py
            completing = submit(partial(self._complete, claim, accepted))
        stored = self._tracker().start(record, new=not existing)
        if stored is not record:  # an existing record wins: answer (and replay) with its status
            accepted = self._accepted(request, record, stored.status, existing)
        if completing is not None:
            completing.result()
        if claim is not None and (completing is None or stored is not record):
            self._complete(claim, accepted)
        return accepted

    def _accepted(self, request: UpgradeRequest, record: UpgradeRecord, status: State, existing: bool) -> Accepted:
        """This request's answer for its new `record`, with the status as stored (an existing one wins)."""
        return Accepted(
            upgrade_id=record.upgrade_id,
            customer_id=request.customer_id,
            product_family=request.product_family,
            status=status,
            partner_center_location=record.partner_center_location or f"productUpgrades/{record.upgrade_id}",
            existing=existing,
            correlation_id=record.correlation_id,
            retry_after=retry_after_seconds(self._settings.first_check_seconds),
        )

    def _complete(self, claim: Claim, accepted: Accepted) -> None:
        """Store the answer for replays (best effort, never raises)."""
        from shared.storage.idempotency import StoredAnswer  # noqa: PLC0415 - loaded by the component already

        self._idempotency().complete(claim, StoredAnswer(accepted.stored_body(), accepted.retry_after))

    def _existing_upgrade(self, request: UpgradeRequest, budget: Budget) -> str | None:
        """The upgrade eligibility names for this customer; raises NotEligible when there is none and the
        customer is not eligible."""
        eligibility = self._pc.check_eligibility(request.customer_id, request.product_family, budget)
        if eligibility.upgrade_id:
            log.info("customer %s already has upgrade %s; returning it", request.customer_id, eligibility.upgrade_id)
            return eligibility.upgrade_id
        if not eligibility.is_eligible:
            raise NotEligible(
                f"customer {request.customer_id} is not eligible for the upgrade to the Azure plan: "
                f"{eligibility.reason or 'Partner Center gave no reason'}",
                PartnerCenterFault(200, None, eligibility.reason, eligibility.request_id, eligibility.correlation_id),
            )
        return None

    def _create(self, request: UpgradeRequest, request_id: str, budget: Budget) -> tuple[str, str, bool]:
        """(upgrade id, Partner Center location, existing). A 409 900109 (an upgrade is in progress) after an
        eligibility check that named none means another submission for this customer won the race: eligibility,
        asked again, names its upgrade, and this caller gets that one as the sequential path would answer."""
        try:
            created = self._pc.create_upgrade(request.customer_id, request.product_family, request_id, budget)
        except UpgradeConflict as conflict:
            fault = conflict.partner_center
            if not self._settings.check_eligibility or fault is None or fault.code != UPGRADE_IN_PROGRESS_CODE:
                raise
            upgrade_id = self._upgrade_named_by_eligibility(request, budget)
            if upgrade_id is None:
                raise
            log.info(
                "customer %s: upgrade %s won a concurrent submission; returning it", request.customer_id, upgrade_id
            )
            return upgrade_id, f"productUpgrades/{upgrade_id}", True
        log.info("Partner Center accepted upgrade %s for customer %s", created.upgrade_id, request.customer_id)
        return created.upgrade_id, created.location, False

    def _upgrade_named_by_eligibility(self, request: UpgradeRequest, budget: Budget) -> str | None:
        """Eligibility asked again after a conflict; None (keep the 409) when it names no upgrade or fails."""
        try:
            return self._pc.check_eligibility(request.customer_id, request.product_family, budget).upgrade_id
        except UpgradeError as error:
            log.warning("eligibility after a 409 for customer %s failed: %s", request.customer_id, type(error).__name__)
            return None
