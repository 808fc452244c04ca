"""The errors a caller can be answered with: `UpgradeError` and its subclasses, raised deep down and turned into
problem+json in `shared/api/problems.py` only. Each carries the HTTP status docs/design.md assigns to it and a
problem-type slug; messages are written for the operator and the caller and never contain a secret, a token or a
request body. `RetryLater` (below) asks the Functions host to redeliver a queue message.

Other exceptions are control flow inside one component, never answered as such: `ConfigurationError`
(settings.py: the app settings are invalid; answered as a 500 configuration-error), `InvalidMessage` /
`InvalidBatchMessage` (a queue message that breaks its contract: parked in the poison queue), `PaceDeferred`
(batches/pacing.py: the work goes back to the queue), `BatchCancelled` (batches/outcomes.py), `AttemptAgain`
(partner_center/outbound.py: one more attempt in the retry loop) and `ConcurrentUpdate` (storage/records.py: an
ETag race lost).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

TYPE_PREFIX = "urn:partner-center-upgrade:problem:"
"""Problem types are `TYPE_PREFIX + slug` (docs/problems.md); ERROR log lines about consent name them too."""


@dataclass(frozen=True)
class FieldError:
    field: str
    detail: str


@dataclass(frozen=True)
class PartnerCenterFault:
    """What Partner Center said when it said no, as carried in the problem's `partnerCenter` member."""

    http_status: int
    code: str | None
    description: str | None
    request_id: str | None
    correlation_id: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "httpStatus": self.http_status,
            "code": self.code,
            "description": self.description,
            "requestId": self.request_id,
            "correlationId": self.correlation_id,
        }


class RetryLater(Exception):
    """A transient failure while handling a queue message: the host must retry it (and finally poison it)."""


class UpgradeError(Exception):
    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal error"
    retry_after: int | None = None
    errors: tuple[FieldError, ...] = ()
    partner_center: PartnerCenterFault | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def problem_type(self) -> str:
        return TYPE_PREFIX + self.slug


class ValidationFailed(UpgradeError):
    status, slug, title = 400, "validation-failed", "The request is not valid"

    def __init__(self, errors: list[FieldError] | tuple[FieldError, ...], detail: str | None = None) -> None:
        super().__init__(detail or "; ".join(f"{e.field}: {e.detail}" for e in errors))
        self.errors = tuple(errors)


class PayloadTooLarge(UpgradeError):
    status, slug, title = 413, "payload-too-large", "The request body is too large"


class UnsupportedMediaType(UpgradeError):
    status, slug, title = 415, "unsupported-media-type", "The request body must be JSON"


class NotFound(UpgradeError):
    status, slug, title = 404, "not-found", "No such upgrade"


class BatchNotFound(NotFound):
    title = "No such batch"


class InvalidFollowLink(UpgradeError):
    """A follow link without a valid signature, or past its expiry. Says nothing about the upgrade or batch."""

    status, slug, title = 401, "invalid-follow-link", "The follow link is not valid"

    def __init__(self) -> None:
        super().__init__(
            "the link is incomplete, was changed or has expired; start again from the Location of a new request, "
            "or call the statusUri with your credential"
        )


class Unauthenticated(UpgradeError):
    """No valid credential. One body for every reason (the reason goes to the log and the audit entry only)."""

    status, slug, title = 401, "unauthenticated", "Authentication required"

    def __init__(self, reason: str) -> None:
        super().__init__(
            "send an Entra ID access token for this API (Authorization: Bearer) or a caller key (X-Caller-Key)"
        )
        self.reason = reason


class Forbidden(UpgradeError):
    status, slug, title = 403, "forbidden", "The caller lacks the role this request needs"

    def __init__(self, role: str) -> None:
        super().__init__(f"this request needs the role {role}")
        self.role = role


class IdempotencyKeyReused(UpgradeError):
    status, slug, title = 422, "idempotency-key-reused", "The Idempotency-Key was used with a different body"


class IdempotencyKeyInFlight(UpgradeError):
    status, slug, title = 409, "idempotency-key-in-flight", "A request with this Idempotency-Key is in progress"
    retry_after = 2


class NotEligible(UpgradeError):
    status, slug, title = 422, "not-eligible", "The customer is not eligible for the upgrade"

    def __init__(self, detail: str, fault: PartnerCenterFault | None = None) -> None:
        super().__init__(detail)
        self.partner_center = fault


class PartnerCenterRejected(UpgradeError):
    """Partner Center answered 4xx about this customer or request (carried verbatim)."""

    status, slug, title = 422, "partner-center-rejected", "Partner Center rejected the upgrade"

    def __init__(self, detail: str, fault: PartnerCenterFault) -> None:
        super().__init__(detail)
        self.partner_center = fault


class UpgradeConflict(PartnerCenterRejected):
    status, slug, title = 409, "upgrade-conflict", "An upgrade for this customer is pending, in progress or failed"


class PartnerCenterUnknownUpgrade(PartnerCenterRejected):
    """Partner Center does not know this upgrade id for this customer (900106 / 900111)."""

    status, slug, title = 404, "not-found", "No such upgrade"


class ConsentRequired(UpgradeError):
    status, slug, title = 502, "consent-required", "The Secure Application Model consent must be renewed"


MFA_ADVICE = (
    "Since 2026-04-01 Partner Center requires MFA for App+User calls. An operator must re-run the consent tool "
    '(from the repository root: make consent ARGS="--vault <vault> --tenant <partner tenant> --client-id <SAM '
    'app id>") and sign in as the integration user with MFA (make sure MFA is enforced for that user); the app '
    "picks up the new refresh token by itself, no restart needed."
)


class MfaRequired(UpgradeError):
    """The SAM consent works but its tokens do not prove MFA (`amr` lacks `mfa`): Partner Center refuses App+User
    calls without it since 2026-04-01. Only a new consent, signed in with MFA, fixes it."""

    status, slug, title = 502, "mfa-required", "The Secure Application Model consent does not prove MFA"

    def __init__(self, detail: str, fault: PartnerCenterFault | None = None) -> None:
        super().__init__(detail)
        self.partner_center = fault


class SamCredentialsRejected(UpgradeError):
    status, slug, title = 502, "sam-credentials-invalid", "Entra ID rejected the SAM application credentials"


class PartnerCenterFailed(UpgradeError):
    status, slug, title = 502, "partner-center-error", "Partner Center failed"

    def __init__(self, detail: str, fault: PartnerCenterFault | None = None) -> None:
        super().__init__(detail)
        self.partner_center = fault


class PartnerCenterAccessDenied(PartnerCenterFailed):
    """Partner Center refused the partner's own set-up (e.g. 403 / 2032 access denied): an operator must fix the
    integration user's roles or the partner's programme; no customer's request can succeed until then."""

    status, slug, title = 502, "partner-center-access-denied", "Partner Center denied the partner access"


class BatchNotFinished(UpgradeError):
    status, slug, title = 409, "batch-not-finished", "The source batch has not finished"


class BatchFinished(UpgradeError):
    status, slug, title = 409, "batch-finished", "The batch has already finished"


class PartnerCenterTimeout(UpgradeError):
    status, slug, title = 504, "partner-center-timeout", "Partner Center did not answer in time"


class PartnerCenterThrottled(UpgradeError):
    status, slug, title = 503, "partner-center-throttled", "Partner Center is throttling requests"

    def __init__(self, detail: str, retry_after: int, fault: PartnerCenterFault | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.partner_center = fault


class DependencyUnavailable(UpgradeError):
    """Key Vault, Entra ID or Azure Storage cannot be reached or answered 5xx/429: retrying helps."""

    status, slug, title = 503, "dependency-unavailable", "A service the app depends on is unavailable"

    def __init__(self, detail: str, retry_after: int = 10) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class DependencyMisconfigured(UpgradeError):
    """Key Vault or Storage refused us (401/403/404): an operator must fix access or a secret name."""

    status, slug, title = 502, "dependency-misconfigured", "A service the app depends on refused the request"


def where(error: BaseException) -> str:
    """`file.py:line` of the innermost frame: enough to find the bug, without a stack trace or any value that
    could hold a secret."""
    frames = traceback.extract_tb(error.__traceback__)
    return f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "unknown"
