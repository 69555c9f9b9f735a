"""The device wire format (docs/devices.md): a JWS compact token, HS256, keyed per device.

Header: {"alg": "HS256", "typ": "JWT", "kid": <device_id>}. Claims: `id` (message id, unique
per device, 1-64 characters), `ts` (RFC 3339 time of measurement, with an offset), `obs`
(non-empty list of {"code", "value", "unit"}), optional `bat` (battery %, 0-100).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import jwt

ALGORITHM = "HS256"
TOPIC_PREFIX = "vh/devices/"
TOPIC_SUFFIX = "/obs"
MAX_MESSAGE_ID = 64
MAX_FIELD = 30  # LOINC codes and UCUM units are short; anything longer is not one

SecretLookup = Callable[[str], str | None]


class ProtocolError(ValueError):
    """A message that cannot be accepted; `reason` is a DeadLetterReason value."""

    def __init__(self, reason: str, detail: str, device_ref: str = "") -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.device_ref = device_ref


@dataclass(frozen=True)
class Reading:
    code: str
    value: Decimal
    unit: str


@dataclass(frozen=True)
class Message:
    device_id: str
    message_id: str
    measured_at: dt.datetime
    readings: tuple[Reading, ...]
    battery: int | None


def topic_for(device_id: str) -> str:
    return f"{TOPIC_PREFIX}{device_id}{TOPIC_SUFFIX}"


def device_id_from_topic(topic: str) -> str | None:
    """The device id in `vh/devices/<device_id>/obs`, or None for any other topic."""
    if not (topic.startswith(TOPIC_PREFIX) and topic.endswith(TOPIC_SUFFIX)):
        return None
    device_id = topic[len(TOPIC_PREFIX) : -len(TOPIC_SUFFIX)]
    return device_id if device_id and "/" not in device_id else None


def _rfc3339(ts: dt.datetime) -> str:
    if ts.tzinfo is None:
        raise ValueError("ts must be timezone-aware")
    return ts.isoformat()


def _measurement(item: Mapping[str, Any] | tuple[str, Any, str]) -> dict[str, Any]:
    if isinstance(item, tuple):
        code, value, unit = item
    else:
        code, value, unit = item["code"], item["value"], item["unit"]
    number = float(value) if isinstance(value, Decimal) else value
    return {"code": code, "value": number, "unit": unit}


def encode_reading(
    device_id: str,
    secret: str,
    measurements: Iterable[Mapping[str, Any] | tuple[str, Any, str]],
    ts: dt.datetime | str | None = None,
    msg_id: str | None = None,
    *,
    battery: int | None = None,
) -> tuple[str, bytes]:
    """(topic, payload) of one signed message carrying `measurements` taken at `ts`."""
    if ts is None:
        ts = dt.datetime.now(dt.UTC)
    claims: dict[str, Any] = {
        "id": msg_id or uuid.uuid4().hex,
        "ts": ts if isinstance(ts, str) else _rfc3339(ts),
        "obs": [_measurement(item) for item in measurements],
    }
    if battery is not None:
        claims["bat"] = battery
    token = jwt.encode(
        claims, secret, algorithm=ALGORITHM, headers={"kid": device_id, "typ": "JWT"}
    )
    return topic_for(device_id), token.encode("ascii")


@dataclass(frozen=True)
class Token:
    """A JWS compact token split and its header read, not yet verified."""

    kid: str
    signing_input: bytes
    claims: bytes
    signature: bytes


def _b64url(segment: bytes) -> bytes:
    # Strict: only the URL-safe alphabet (a stray character is an error, not ignored).
    return base64.b64decode(segment + b"=" * (-len(segment) % 4), altchars=b"-_", validate=True)


def parse_token(payload: bytes) -> Token:
    """Split and read the header once (no key involved); ProtocolError if not acceptable."""
    parts = payload.split(b".")
    if len(parts) != 3:
        raise ProtocolError("unparseable", "not a JWS compact token: it needs three segments")
    try:
        header = json.loads(_b64url(parts[0]))
        claims, signature = _b64url(parts[1]), _b64url(parts[2])
    except (binascii.Error, ValueError) as exc:  # bad base64, bad JSON or UTF-8
        raise ProtocolError("unparseable", f"not a JWS compact token: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("unparseable", "not a JWS compact token: the header is not an object")
    kid = header.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= 64:
        raise ProtocolError(
            "unparseable", "the JWS header has no `kid` (the device id, at most 64 characters)"
        )
    alg = header.get("alg")
    if alg != ALGORITHM:
        # Refused before any key is touched: no "none", no RSA/HMAC confusion.
        raise ProtocolError(
            "bad_algorithm", f"JWS alg must be {ALGORITHM}, got {str(alg)[:20]!r}", kid
        )
    return Token(kid, parts[0] + b"." + parts[1], claims, signature)


def claimed_device(payload: bytes) -> str:
    """The device id a token claims (its `kid` header), unverified; ProtocolError if none."""
    return parse_token(payload).kid


def verify(token: Token, secret_lookup: SecretLookup, max_readings: int = 1000) -> Message:
    """Check the HMAC-SHA256 signature, then the claims; ProtocolError when not acceptable."""
    device_id = token.kid
    secret = secret_lookup(device_id)
    if secret is None:
        raise ProtocolError("unknown_device", f"no device {device_id!r} is registered", device_id)
    expected = hmac.new(secret.encode(), token.signing_input, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, token.signature):
        raise ProtocolError(
            "bad_signature", "the signature does not verify with this device's secret", device_id
        )
    try:
        claims = json.loads(token.claims)
    except ValueError as exc:
        raise ProtocolError("unparseable", f"unreadable token: {exc}", device_id) from None
    return Message(device_id=device_id, **parse_claims(claims, device_id, max_readings))


def decode(payload: bytes, secret_lookup: SecretLookup, max_readings: int = 1000) -> Message:
    """Verify and parse one token; ProtocolError (with its reason) when it is not acceptable."""
    return verify(parse_token(payload), secret_lookup, max_readings)


def _fail(detail: str, device_id: str) -> ProtocolError:
    return ProtocolError("malformed_claims", detail, device_id)


def _parse_ts(value: Any, device_id: str) -> dt.datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise _fail("`ts` must be an RFC 3339 date-time string", device_id)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _fail(f"`ts` {value!r} is not an RFC 3339 date-time", device_id) from None
    if parsed.tzinfo is None or "T" not in value.upper():
        raise _fail(f"`ts` {value!r} needs a date, a time and an offset (e.g. Z)", device_id)
    return parsed


def _parse_reading(index: int, item: Any, device_id: str) -> Reading:
    if not isinstance(item, dict):
        raise _fail(f"obs[{index}] must be an object with code, value and unit", device_id)
    code, value, unit = item.get("code"), item.get("value"), item.get("unit")
    if not isinstance(code, str) or not 0 < len(code) <= MAX_FIELD:
        raise _fail(f"obs[{index}].code must be a LOINC code string", device_id)
    if not isinstance(unit, str) or not 0 < len(unit) <= MAX_FIELD:
        raise _fail(f"obs[{index}].unit must be a UCUM unit string", device_id)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(f"obs[{index}].value must be a finite number", device_id)
    return Reading(code=code, value=Decimal(str(value)), unit=unit)


def parse_claims(claims: Any, device_id: str, max_readings: int = 1000) -> dict[str, Any]:
    """Check the claims' shapes (not their clinical sense); ProtocolError otherwise."""
    if not isinstance(claims, dict):
        raise _fail("the claims must be a JSON object", device_id)
    message_id = claims.get("id")
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_MESSAGE_ID:
        raise _fail(f"`id` must be a string of 1 to {MAX_MESSAGE_ID} characters", device_id)
    obs = claims.get("obs")
    if not isinstance(obs, list) or not obs:
        raise _fail("`obs` must be a non-empty list of readings", device_id)
    if len(obs) > max_readings:
        raise _fail(f"`obs` has {len(obs)} readings; at most {max_readings}", device_id)
    battery = claims.get("bat")
    if battery is not None and (
        isinstance(battery, bool) or not isinstance(battery, int) or not 0 <= battery <= 100
    ):
        raise _fail("`bat` must be an integer from 0 to 100", device_id)
    return {
        "message_id": message_id,
        "measured_at": _parse_ts(claims.get("ts"), device_id),
        "readings": tuple(_parse_reading(i, item, device_id) for i, item in enumerate(obs)),
        "battery": battery,
    }
