"""What Partner Center's refusals mean for the app: a 401 (MFA missing, or the integration user's roles), a
4xx about the customer or the partner's own set-up (documented error codes, `error_codes.py`), and the fault a
problem carries (docs/partner-center.md; DESIGN "Partner Center errors about one customer are final")."""

from __future__ import annotations

import requests

from shared.correlation import get_logger
from shared.errors import (
    MFA_ADVICE,
    MfaRequired,
    PartnerCenterAccessDenied,
    PartnerCenterFailed,
    PartnerCenterFault,
    PartnerCenterRejected,
    UpgradeConflict,
    UpgradeError,
)
from shared.partner_center.claims import authentication_methods, proves_mfa
from shared.partner_center.error_codes import is_final_for_customer, operator_problem
from shared.partner_center.outbound import json_object

log = get_logger(__name__)

MFA_REQUIRED_CODE = "900421"  # docs/partner-center.md "MFA enforcement" (secondary sources; amr is checked too)


def unauthorized(response: requests.Response, token: str, operation: str) -> UpgradeError:
    """A 401 to a freshly issued token: MFA missing (logged once, at ERROR, with its problem type), or else."""
    fault = fault_of(response)
    if fault.code == MFA_REQUIRED_CODE or "mfa" in (fault.description or "").lower() or not proves_mfa(token):
        error = MfaRequired(
            "Partner Center refused the access token because it does not prove multi-factor authentication "
            f"(token amr: {', '.join(authentication_methods(token)) or 'none'}; Partner Center code "
            f"{fault.code or 'none'}). {MFA_ADVICE}",
            fault,
        )
        log.error(
            "Partner Center %s refused the SAM access token without MFA: problemType=%s (code %s, MS-RequestId %s)",
            operation, error.problem_type, fault.code, fault.request_id,
        )  # fmt: skip
        return error
    return PartnerCenterFailed(
        "Partner Center refused a freshly issued access token (HTTP 401); check that the SAM "
        "integration user still has an admin agent role",
        fault,
    )


def rejection(response: requests.Response, detail: str) -> UpgradeError:
    """A 4xx other than 401 and 429: which app error it is, by Partner Center's documented codes."""
    fault = fault_of(response)
    explained = f"{detail}: {fault.description or 'no description'} (code {fault.code or 'none'})"
    if response.status_code == 409:
        return UpgradeConflict(explained, fault)
    if response.status_code == 403 and (fix := operator_problem(fault.code)) is not None:
        return PartnerCenterAccessDenied(f"{explained}; {fix}", fault)
    if response.status_code in (400, 404) or (response.status_code == 403 and is_final_for_customer(fault.code)):
        return PartnerCenterRejected(explained, fault)
    return PartnerCenterFailed(f"{detail} with HTTP {response.status_code}", fault)


def fault_of(response: requests.Response) -> PartnerCenterFault:
    """What Partner Center said, as the problem's `partnerCenter` member carries it."""
    document = json_object(response)
    code = document.get("code", document.get("statusCode"))
    description = document.get("description", document.get("message"))
    return PartnerCenterFault(
        http_status=response.status_code,
        code=str(code) if code is not None else None,
        description=str(description)[:1024] if description is not None else None,
        request_id=response.headers.get("MS-RequestId"),
        correlation_id=response.headers.get("MS-CorrelationId"),
    )
