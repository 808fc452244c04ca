import azure.functions as func

from shared.api.timers import keep_consent_alive


def main(timer: func.TimerRequest) -> None:
    keep_consent_alive(timer)
