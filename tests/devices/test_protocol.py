import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import jwt
import pytest

from apps.devices.protocol import (
    ProtocolError,
    decode,
    device_id_from_topic,
    encode_reading,
    topic_for,
)

SECRET = "s" * 64  # long enough for HS512 too, so the refusal is about the alg
DEVICE = "dev-abcdefghijklmnopqrst"


def lookup(kid: str) -> str | None:
    return SECRET if kid == DEVICE else None


def b64(data: Mapping[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_round_trip() -> None:
    ts = dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC)
    topic, payload = encode_reading(
        DEVICE, SECRET, [{"code": "8867-4", "value": 72, "unit": "/min"}], ts, "m-1", battery=80
    )
    assert topic == f"vh/devices/{DEVICE}/obs"
    message = decode(payload, lookup)
    assert message.device_id == DEVICE
    assert message.message_id == "m-1"
    assert message.measured_at == ts
    assert message.battery == 80
    assert [(r.code, r.value, r.unit) for r in message.readings] == [
        ("8867-4", Decimal(72), "/min")
    ]


def test_default_message_id_and_time_are_filled() -> None:
    _, payload = encode_reading(DEVICE, SECRET, [("8867-4", 61.5, "/min")])
    message = decode(payload, lookup)
    assert len(message.message_id) == 32
    assert abs(message.measured_at - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)
    assert message.readings[0].value == Decimal("61.5")


def test_topic_parsing() -> None:
    assert device_id_from_topic(topic_for(DEVICE)) == DEVICE
    assert device_id_from_topic("vh/devices//obs") is None
    assert device_id_from_topic("vh/devices/a/b/obs") is None
    assert device_id_from_topic("other/topic") is None


def test_tampered_claims_fail_the_signature() -> None:
    _, payload = encode_reading(DEVICE, SECRET, [("8867-4", 72, "/min")], msg_id="m-1")
    header, _claims, signature = payload.decode().split(".")
    forged = {"id": "m-1", "ts": "2026-03-01T08:30:00Z", "obs": [{"code": "8867-4",
              "value": 190, "unit": "/min"}]}  # fmt: skip
    with pytest.raises(ProtocolError) as exc:
        decode(f"{header}.{b64(forged)}.{signature}".encode(), lookup)
    assert exc.value.reason == "bad_signature"
    assert exc.value.device_ref == DEVICE


def test_wrong_secret_fails_the_signature() -> None:
    _, payload = encode_reading(DEVICE, "another-secret-of-enough-length-0123456789", [])
    with pytest.raises(ProtocolError) as exc:
        decode(payload, lookup)
    assert exc.value.reason == "bad_signature"


def test_alg_none_is_refused() -> None:
    header = b64({"alg": "none", "typ": "JWT", "kid": DEVICE})
    claims = b64({"id": "x", "ts": "2026-03-01T08:30:00Z", "obs": []})
    with pytest.raises(ProtocolError) as exc:
        decode(f"{header}.{claims}.".encode(), lookup)
    assert exc.value.reason == "bad_algorithm"


@pytest.mark.parametrize("alg", ["HS512", "HS384"])
def test_other_hmac_algorithms_are_refused(alg: str) -> None:
    token = jwt.encode({"id": "x"}, SECRET, algorithm=alg, headers={"kid": DEVICE})
    with pytest.raises(ProtocolError) as exc:
        decode(token.encode(), lookup)
    assert exc.value.reason == "bad_algorithm"


def test_rs256_header_is_refused_before_any_key_use() -> None:
    # The classic confusion: an RS256 header hoping the HMAC secret is used as a public key.
    header = b64({"alg": "RS256", "kid": DEVICE})
    with pytest.raises(ProtocolError) as exc:
        decode(f"{header}.{b64({'id': 'x'})}.{b64(b'sig')}".encode(), lookup)
    assert exc.value.reason == "bad_algorithm"


@pytest.mark.parametrize("payload", [b"", b"garbage", b"a.b.c", "é.é.é".encode(), b"\xff\xfe"])
def test_unparseable(payload: bytes) -> None:
    with pytest.raises(ProtocolError) as exc:
        decode(payload, lookup)
    assert exc.value.reason == "unparseable"


def test_token_without_kid_is_unparseable() -> None:
    token = jwt.encode({"id": "x"}, SECRET, algorithm="HS256")
    with pytest.raises(ProtocolError) as exc:
        decode(token.encode(), lookup)
    assert exc.value.reason == "unparseable"
    assert "kid" in exc.value.detail


def test_unknown_device() -> None:
    _, payload = encode_reading("dev-unknown", SECRET, [("8867-4", 72, "/min")])
    with pytest.raises(ProtocolError) as exc:
        decode(payload, lookup)
    assert exc.value.reason == "unknown_device"
    assert exc.value.device_ref == "dev-unknown"


@pytest.mark.parametrize(
    ("claims", "fragment"),
    [
        ({"ts": "2026-03-01T08:30:00Z", "obs": [{"code": "8867-4", "value": 1, "unit": "/min"}]},
         "`id`"),
        ({"id": "x" * 65, "ts": "2026-03-01T08:30:00Z", "obs": [{}]}, "`id`"),
        ({"id": "a", "ts": "2026-03-01T08:30:00Z", "obs": []}, "`obs`"),
        ({"id": "a", "ts": "2026-03-01T08:30:00Z", "obs": "x"}, "`obs`"),
        ({"id": "a", "ts": "yesterday", "obs": [{"code": "8867-4", "value": 1, "unit": "/min"}]},
         "`ts`"),
        ({"id": "a", "ts": "2026-03-01T08:30:00", "obs": [{"code": "8867-4", "value": 1,
          "unit": "/min"}]}, "offset"),
        ({"id": "a", "ts": "2026-03-01T08:30:00Z", "obs": [{"code": "8867-4", "value": "72",
          "unit": "/min"}]}, "value"),
        ({"id": "a", "ts": "2026-03-01T08:30:00Z", "obs": [{"code": "8867-4", "value": True,
          "unit": "/min"}]}, "value"),
        ({"id": "a", "ts": "2026-03-01T08:30:00Z", "obs": [{"value": 1, "unit": "/min"}]},
         "code"),
        ({"id": "a", "ts": "2026-03-01T08:30:00Z", "obs": [{"code": "8867-4", "value": 1}]},
         "unit"),
        ({"id": "a", "ts": "2026-03-01T08:30:00Z", "bat": 101, "obs": [{"code": "8867-4",
          "value": 1, "unit": "/min"}]}, "`bat`"),
    ],
)  # fmt: skip
def test_malformed_claims(claims: dict[str, object], fragment: str) -> None:
    token = jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": DEVICE})
    with pytest.raises(ProtocolError) as exc:
        decode(token.encode(), lookup)
    assert exc.value.reason == "malformed_claims"
    assert fragment in exc.value.detail


def test_non_finite_value_is_malformed() -> None:
    header = b64({"alg": "HS256", "kid": DEVICE})
    claims = b64(b'{"id":"a","ts":"2026-03-01T08:30:00Z","obs":[{"code":"8867-4","value":NaN,'
                 b'"unit":"/min"}]}')  # fmt: skip
    signing_input = f"{header}.{claims}".encode()
    signature = b64(hmac.new(SECRET.encode(), signing_input, hashlib.sha256).digest())
    with pytest.raises(ProtocolError) as exc:
        decode(f"{header}.{claims}.{signature}".encode(), lookup)
    assert exc.value.reason == "malformed_claims"


def test_too_many_readings_is_malformed() -> None:
    _, payload = encode_reading(DEVICE, SECRET, [("8867-4", 72, "/min")] * 11)
    with pytest.raises(ProtocolError) as exc:
        decode(payload, lookup, max_readings=10)
    assert exc.value.reason == "malformed_claims"
