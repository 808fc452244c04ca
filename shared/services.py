"""The per-process collaborators, each built lazily on first use and then reused.

`services()` is the one accessor the function entry points use. Building a member imports its SDK, so an
instance imports only what its requests need (a final 200 needs no Key Vault). Building is single-flight: 32
concurrent first requests get one SecretClient, one token provider, one session.
`reset_services()` drops everything (the environment changed, e.g. between tests or in devhost).
Storage calls that one request makes side by side share the process's one small pool (shared/concurrency.py);
each storage client keeps its own connection pool (shared/storage/clients.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.clock import Clock, SystemClock
from shared.settings import Settings

if TYPE_CHECKING:
    import requests
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableClient
    from azure.storage.queue import QueueClient

    from shared.batches.completion import BatchCompletion
    from shared.batches.links import BatchLinks
    from shared.batches.messages import BatchQueue
    from shared.batches.pacing import Pacer
    from shared.batches.service import BatchService
    from shared.batches.store import BatchStore
    from shared.batches.worker import BatchWorker
    from shared.key_vault import SecretStore
    from shared.partner_center.client import PartnerCenterClient
    from shared.partner_center.sam import SamTokenProvider
    from shared.storage.consent_state import ConsentStateStore
    from shared.storage.idempotency import Idempotency
    from shared.storage.poison_queue import PoisonQueue
    from shared.storage.records import UpgradeStore
    from shared.storage.status_queue import StatusQueue
    from shared.tracking.callbacks import CallbackSender
    from shared.tracking.tracker import Tracker
    from shared.upgrades.create import UpgradeService

logging.getLogger("azure").setLevel(logging.WARNING)
logging.getLogger("urllib3").setLevel(logging.WARNING)

HTTP_POOL_SIZE = 32


class lazy[T]:  # lower case: used like @property
    """A property computed once per instance under the instance's lock (single flight)."""

    def __init__(self, build: Callable[[Any], T]) -> None:
        self._build = build
        self._name = build.__name__

    def __get__(self, instance: Services, owner: type | None = None) -> T:
        try:
            return instance.__dict__[self._name]  # type: ignore[no-any-return]
        except KeyError:
            pass
        with instance._lock:
            if self._name not in instance.__dict__:
                instance.__dict__[self._name] = self._build(instance)
            return instance.__dict__[self._name]  # type: ignore[no-any-return]


def http_session() -> requests.Session:
    """A pooled session for one outbound target; retries are the caller's (see partner_center.py)."""
    from shared.outbound_http import pooled_session

    return pooled_session(HTTP_POOL_SIZE)


class Services:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self._lock = threading.RLock()

    @lazy
    def credential(self) -> TokenCredential:
        from azure.identity import DefaultAzureCredential

        from shared.outbound_http import sdk_transport

        return DefaultAzureCredential(transport=sdk_transport(HTTP_POOL_SIZE))

    @lazy
    def secrets(self) -> SecretStore:
        from azure.keyvault.secrets import SecretClient

        from shared.key_vault import SecretStore
        from shared.outbound_http import sdk_transport

        client = SecretClient(
            self.settings.key_vault_url,
            self.credential,
            retry_total=2,
            retry_backoff_factor=0.5,
            retry_backoff_max=4,
            transport=sdk_transport(HTTP_POOL_SIZE),  # with its timeouts (5 s connect, 10 s read)
        )
        return SecretStore(client, self.clock)

    @lazy
    def tokens(self) -> SamTokenProvider:
        from shared.partner_center.sam import SamTokenProvider

        return SamTokenProvider(self.settings, self.secrets, http_session(), self.clock)

    @lazy
    def partner_center(self) -> PartnerCenterClient:
        from shared.partner_center.client import PartnerCenterClient

        return PartnerCenterClient(
            self.settings.partner_center_base_url,
            self.tokens,
            http_session(),
            self.clock,
            read_timeout=self.settings.partner_center_timeout_seconds,
        )

    @lazy
    def table(self) -> TableClient:
        """One client (one connection pool) for the table that holds status records and idempotency keys."""
        from shared.storage.clients import table_client

        return table_client(self.settings.storage, self.settings.upgrades_table, lambda: self.credential)

    @lazy
    def store(self) -> UpgradeStore:
        from shared.storage.records import UpgradeStore

        return UpgradeStore(self.table)

    @lazy
    def idempotency(self) -> Idempotency:
        from shared.storage.idempotency import Idempotency
        from shared.storage.idempotency_table import IdempotencyTable

        lease = self.settings.idempotency_claim_lease_seconds
        return Idempotency(IdempotencyTable(self.table), self.clock, claim_lease_seconds=lease)

    @lazy
    def consent_state(self) -> ConsentStateStore:
        from shared.storage.consent_state import ConsentStateStore

        return ConsentStateStore(self.table)

    @lazy
    def poison_queues(self) -> tuple[QueueClient, ...]:
        """The host's poison queues of the app's two queues (`<queue>-poison`), for the health route's counts."""
        from shared.storage.clients import queue_client

        names = (self.settings.status_queue, self.settings.batch_queue)
        return tuple(queue_client(self.settings.storage, f"{n}-poison", lambda: self.credential) for n in names)

    @lazy
    def queue(self) -> StatusQueue:
        from shared.storage.clients import queue_client
        from shared.storage.poison_queue import poison_queue
        from shared.storage.status_queue import StatusQueue

        name = self.settings.status_queue
        return StatusQueue(
            queue_client(self.settings.storage, name, lambda: self.credential),
            poison_queue(self.settings.storage, f"{name}-poison", lambda: self.credential),
        )

    @lazy
    def callbacks(self) -> CallbackSender:
        from shared.tracking.callback_transport import callback_session
        from shared.tracking.callbacks import CallbackSender

        return CallbackSender(self.settings, self.secrets, callback_session(), self.clock)

    @lazy
    def tracker(self) -> Tracker:
        from shared.tracking.tracker import Tracker

        return Tracker(
            self.settings,
            store=self.store,
            queue=self.queue,
            partner_center=self.partner_center,
            callbacks=self.callbacks,
            clock=self.clock,
            final_listener=lambda: self.batch_completion,  # built on first use: it needs the tracker's collaborators
        )

    @lazy
    def upgrades(self) -> UpgradeService:
        from shared.upgrades.create import UpgradeService

        service = UpgradeService(
            self.settings, self.partner_center, lambda: self.idempotency, lambda: self.tracker, self.clock
        )
        # Cold start: the first create spends its first ~100 ms waiting on Key Vault, Entra and Partner Center;
        # the tracker (the Table and Queue SDKs, ~60-90 ms of imports) is built meanwhile in the background. It
        # is built under this instance's lock, which that wait does not need; a failure here is ignored (the
        # request's own use of the tracker builds it again and answers for the error).
        from shared.concurrency import submit

        submit(lambda: self.tracker)
        return service

    # --- batches (shared/batches) -----------------------------------------------------------------

    @lazy
    def batch_queue(self) -> BatchQueue:
        from shared.batches.messages import BatchQueue
        from shared.storage.clients import queue_client

        return BatchQueue(queue_client(self.settings.storage, self.settings.batch_queue, lambda: self.credential))

    @lazy
    def batch_poison(self) -> PoisonQueue:
        from shared.storage.poison_queue import poison_queue

        return poison_queue(self.settings.storage, f"{self.settings.batch_queue}-poison", lambda: self.credential)

    @lazy
    def batch_store(self) -> BatchStore:
        from shared.batches.store import BatchStore

        # before a write makes a batch final, its callback gets a guarding message (shared/batches/completion.py)
        return BatchStore(self.table, before_completing=lambda batch: self.batch_completion.guard(batch))  # noqa: PLW0108 - built lazily

    @lazy
    def batch_links(self) -> BatchLinks:
        from shared.batches.links import BatchLinks

        return BatchLinks(self.table)

    @lazy
    def pacer(self) -> Pacer:
        from shared.batches.pacing import Pacer

        return Pacer(self.table, self.clock, self.settings.batch_calls_per_minute)

    @lazy
    def batches(self) -> BatchService:
        from shared.batches.service import BatchService

        return BatchService(self.batch_store, self.batch_queue, lambda: self.idempotency, self.clock)

    @lazy
    def batch_completion(self) -> BatchCompletion:
        from shared.batches.completion import BatchCompletion

        return BatchCompletion(
            self.settings, self.batch_store, self.batch_queue, self.batch_links, self.callbacks, self.clock
        )

    @lazy
    def batch_worker(self) -> BatchWorker:
        from shared.batches.outcomes import CustomerWork
        from shared.batches.worker import BatchWorker

        work = CustomerWork(self.partner_center, self.upgrades, self.store, self.batch_links, self.pacer, self.clock)
        return BatchWorker(
            store=self.batch_store,
            queue=self.batch_queue,
            work=work,
            pacer=self.pacer,
            partner_center=self.partner_center,
            completion=self.batch_completion,
            clock=self.clock,
        )


_services: Services | None = None
_services_lock = threading.Lock()


def services() -> Services:
    """The process's services, built from the environment on first use (raises ConfigurationError)."""
    global _services  # noqa: PLW0603 - the one lazily built process-wide singleton
    current = _services
    if current is not None:
        return current
    with _services_lock:
        if _services is None:
            _services = Services(Settings.from_env())
        return _services


def reset_services() -> None:
    global _services  # noqa: PLW0603
    with _services_lock:
        _services = None
