"""Timer-triggered functions: one correlation id per run, call `shared`, log the outcome; never raise.

A timer run that raised would only add a host ERROR line (without the problem type the consent alert matches);
the state the run records is what the health route shows.
"""

from __future__ import annotations

import azure.functions as func

from shared.correlation import correlation_id_from, correlation_scope, get_logger
from shared.errors import UpgradeError, where
from shared.services import services
from shared.settings import ConfigurationError

log = get_logger(__name__)


def keep_consent_alive(timer: func.TimerRequest) -> None:
    with correlation_scope(correlation_id_from(None)):
        if timer.past_due:
            log.info("KeepConsentAlive is running late (past due)")
        try:
            svc = services()
            # lazy: Key Vault, token and table code: imported by the run
            from shared.consent import keep_alive  # noqa: PLC0415

            keep_alive.keep_consent_alive(svc.settings, svc.tokens, svc.secrets, svc.consent_state, svc.clock)
        except ConfigurationError as error:
            log.error("%s", error)
        except UpgradeError as error:
            log.warning("KeepConsentAlive could not record the consent state: %s", error.detail)
        except Exception as error:  # a bug: one line for the operator; the next run tries again
            log.error("unexpected %s in KeepConsentAlive at %s", type(error).__name__, where(error))
