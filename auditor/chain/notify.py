"""Outbound notifications (the watch's webhook): the only HTTP this tool sends that is not to a node."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.request
from collections.abc import Mapping
from typing import Any

SIGNATURE_HEADER = "X-Auditor-Signature"
DELIVERY_HEADER = "X-Auditor-Delivery"


def sign(secret: bytes, body: bytes) -> str:
    """The webhook's signature header value: sha256=HEX(HMAC-SHA256(secret, body))."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def post(url: str, secret: bytes, seq: int, alert: Mapping[str, Any], timeout: float = 10.0) -> None:
    """POST one alert; raises OSError (urllib.error.URLError included) unless the receiver answers 2xx."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"webhook {url!r}: only http(s) URLs are posted to")
    body = json.dumps({"seq": seq, **alert}, sort_keys=True, separators=(",", ":")).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310 - http(s) only
        "Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body), DELIVERY_HEADER: str(seq)})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's own URL
        if not 200 <= response.status < 300:
            raise OSError(f"the webhook answered HTTP {response.status}")
