"""Reading the JSON object in an outside service's answer, whatever the service actually sent."""

from __future__ import annotations

from typing import Any

import requests


def json_object(response: requests.Response) -> dict[str, Any]:
    """The answer's JSON object, or {} when it is empty, not JSON, or not an object."""
    try:
        document = response.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
