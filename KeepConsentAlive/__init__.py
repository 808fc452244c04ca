import azure.functions as func


def main(timer: func.TimerRequest) -> None:
    from shared.api.timers import keep_consent_alive  # on the first call: docs/design.md, Performance

    keep_consent_alive(timer)
