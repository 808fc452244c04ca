"""Never loaded: its queue name refers to an app setting that is not set."""

import azure.functions as func


def main(msg: func.QueueMessage) -> None:
    del msg
