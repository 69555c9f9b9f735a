import pytest

from apps.core.realtime import EVENT_TYPES, UnknownEvent, build_event, session_group


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_each_declared_event_builds_with_exactly_its_keys(event_type: str) -> None:
    payload = {key: "x" for key in EVENT_TYPES[event_type]}

    event = build_event(event_type, payload)

    assert event["type"] == event_type
    assert set(event) == {"type", *EVENT_TYPES[event_type]}


def test_an_undeclared_event_is_refused() -> None:
    with pytest.raises(UnknownEvent):
        build_event("alert.raised", {})


def test_a_payload_with_missing_or_extra_keys_is_refused() -> None:
    with pytest.raises(UnknownEvent):
        build_event("notification.read", {})
    with pytest.raises(UnknownEvent):
        build_event("notification.read", {"unread_count": 1, "secret": "x"})


def test_session_groups_do_not_reveal_the_session_key() -> None:
    group = session_group("abcdef0123456789abcdef0123456789")

    assert "abcdef0123456789" not in group
    assert len(group) < 100
