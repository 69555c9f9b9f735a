"""ICE servers handed to browsers: STUN as configured, TURN with coturn REST-API credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac

from django.test import override_settings

from apps.teleconsult.services.ice import ice_servers, turn_credentials


@override_settings(TURN_SECRET="s3cret", TURN_CREDENTIAL_SECONDS=600)
def test_turn_credentials_follow_the_coturn_rest_scheme() -> None:
    username, credential = turn_credentials("u42", now=1_700_000_000)
    assert username == "1700000600:u42"
    # What coturn computes from `static-auth-secret` to check the password.
    expected = hmac.new(b"s3cret", b"1700000600:u42", hashlib.sha1).digest()
    assert base64.b64decode(credential) == expected


@override_settings(TURN_SECRET="other", TURN_CREDENTIAL_SECONDS=600)
def test_a_credential_depends_on_the_secret() -> None:
    _user, with_other = turn_credentials("u42", now=1_700_000_000)
    with override_settings(TURN_SECRET="s3cret"):
        _user, with_secret = turn_credentials("u42", now=1_700_000_000)
    assert with_other != with_secret


@override_settings(
    STUN_URLS=["stun:stun.example.org:3478"],
    TURN_URLS=["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
    TURN_SECRET="s3cret",
)
def test_ice_servers_list_stun_then_turn_with_credentials() -> None:
    stun, turn = ice_servers("g7")
    assert stun == {"urls": ["stun:stun.example.org:3478"]}
    assert turn["urls"] == [
        "turn:turn.example.org:3478?transport=udp",
        "turns:turn.example.org:5349",
    ]
    assert turn["username"].endswith(":g7")
    assert "s3cret" not in turn["credential"]


@override_settings(STUN_URLS=[], TURN_URLS=[], TURN_SECRET=None)
def test_no_servers_configured_means_direct_connections_only() -> None:
    assert ice_servers("u1") == []
