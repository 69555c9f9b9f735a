"""HTTPS ingestion for devices that cannot speak MQTT: the JWS signature is the credential."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.core import ratelimit
from apps.core.net import get_client_ip

from .models import Transport
from .protocol import ProtocolError, claimed_device
from .services.ingest import DUPLICATE, STORED, RawMessage, ingest

CONTENT_TYPE = "application/jose"


def _error(status: int, error: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": error, "detail": detail}, status=status)


@csrf_exempt
@require_POST
def ingest_view(request: HttpRequest) -> JsonResponse:
    """POST one token (Content-Type: application/jose): 202 stored, 200 duplicate, 4xx else."""
    if request.content_type != CONTENT_TYPE:
        return _error(
            415, "unsupported_media_type", f"send the token with Content-Type: {CONTENT_TYPE}"
        )
    # A bounded read: an oversized body is not buffered whole, and still gets its dead letter.
    payload = request.read(settings.DEVICES_MAX_PAYLOAD_BYTES + 1).strip()
    try:
        ref = claimed_device(payload)
    except ProtocolError:
        ref = ""
    key = f"devices:http:{get_client_ip(request)}:{ref}"
    if not ratelimit.hit(key, settings.DEVICES_HTTP_RATE_LIMIT, 60):
        return _error(429, "rate_limited", "too many messages from this device; slow down")
    result = ingest([RawMessage(payload=payload, transport=Transport.HTTP)])
    outcome = result.outcomes[0]
    if outcome.status == STORED:
        return JsonResponse({"status": STORED, "stored": outcome.readings}, status=202)
    if outcome.status == DUPLICATE:
        return JsonResponse({"status": DUPLICATE, "stored": 0}, status=200)
    status = 413 if outcome.reason == "oversized" else 400
    return _error(status, outcome.reason, outcome.detail)
