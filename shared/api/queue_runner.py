"""Running one queue message's work (both queue triggers): whatever goes wrong leaves as one `RetryLater` with a
one-line reason (the host retries the message and finally moves it to `<queue>-poison`), so the worker never
logs a stack trace of ours."""

from __future__ import annotations

import time
from collections.abc import Callable

from shared.correlation import get_logger
from shared.errors import RetryLater, UpgradeError, where
from shared.settings import ConfigurationError

log = get_logger(__name__)


def run_message(function: str, message_id: str, work: Callable[[], None]) -> None:
    """Run one queue message's work. Whatever goes wrong leaves as one `RetryLater` with a one-line reason (the
    host retries the message, then moves it to `<queue>-poison`): the worker never logs a stack trace of ours."""
    started = time.monotonic()
    try:
        work()
    except (RetryLater, UpgradeError) as error:
        detail = error.detail if isinstance(error, UpgradeError) else str(error)
        log.warning("%s message %s will be retried by the host: %s", function, message_id, detail)
        raise RetryLater(detail) from None
    except ConfigurationError as error:
        log.error("%s", error)
        raise RetryLater("the app settings are invalid") from None
    except Exception as error:  # a bug: one line for the operator; the message is retried, then kept in poison
        log.error("unexpected %s in %s at %s", type(error).__name__, function, where(error))
        raise RetryLater(f"unexpected {type(error).__name__}") from None
    log.info("%s message %s done in %.0f ms", function, message_id, (time.monotonic() - started) * 1000)
