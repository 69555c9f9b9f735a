"""The messaging pages make a fixed number of queries, however many threads or messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import User
from apps.messaging.access import ThreadAccess
from apps.messaging.models import Thread, Topic
from apps.messaging.services.threads import (
    do_post_message,
)
from apps.messaging.services.triage import (
    do_assign,
)

from .pages_support import client_for, jpeg_bytes, open_all_day, upload


@pytest.fixture(autouse=True)
def _pages(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    open_all_day(settings)


def count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_inbox_queries_do_not_grow_with_threads(
    clinician: User,
    colleague: User,
    django_assert_num_queries: Any,
    make_thread: Callable[..., Thread],
) -> None:
    client = client_for(clinician)
    first = make_thread()
    do_assign(ThreadAccess(first, clinician), colleague.pk)
    client.get("/clinic/messages/")  # sessions and caches warmed
    one = count_queries(client, "/clinic/messages/")
    for n in range(9):
        thread = make_thread(subject=f"S{n}", topic=Topic.SYMPTOM)
        if n % 2:
            do_assign(ThreadAccess(thread, clinician), clinician.pk)
            do_post_message(ThreadAccess(thread, clinician), body="Réponse")
    make_thread(clinician, topic=Topic.CASE, subject="Staff")

    with django_assert_num_queries(one):
        response = client.get("/clinic/messages/")
    assert response.content.decode().count('class="thread-row') == 11


def test_patient_list_queries_do_not_grow_with_threads(
    patient: User,
    clinician: User,
    django_assert_num_queries: Any,
    make_thread: Callable[..., Thread],
) -> None:
    client = client_for(patient)
    make_thread()
    client.get("/messages/")
    one = count_queries(client, "/messages/")
    for n in range(9):
        thread = make_thread(subject=f"S{n}")
        do_post_message(ThreadAccess(thread, clinician), body="Réponse")

    with django_assert_num_queries(one):
        response = client.get("/messages/")
    assert response.content.decode().count('class="thread-row') == 10


@pytest.mark.parametrize("side", ["patient", "clinician"])
def test_thread_page_queries_do_not_grow_with_messages(
    request: pytest.FixtureRequest,
    side: str,
    patient: User,
    clinician: User,
    colleague: User,
    django_assert_num_queries: Any,
    make_thread: Callable[..., Thread],
) -> None:
    thread = make_thread(files=[upload("a.jpg", jpeg_bytes())])
    reader: User = request.getfixturevalue(side)
    client = client_for(reader)
    url = f"/messages/{thread.pk}/" if side == "patient" else f"/clinic/messages/{thread.pk}/"
    client.get(url)
    one = count_queries(client, url)
    for n in range(9):
        author = clinician if n % 2 else patient
        mentions = [colleague.pk] if author == clinician else []
        do_post_message(
            ThreadAccess(thread, author),
            body=f"Message {n}",
            files=[upload(f"p{n}.jpg", jpeg_bytes())],
            mention_ids=mentions,
        )

    with django_assert_num_queries(one):
        response = client.get(url)
    assert response.content.decode().count('class="msg ') == 10
