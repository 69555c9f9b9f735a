"""The MQTT ingestor: a persistent shared subscription, batches, acks only after commit.

paho's network thread only queues messages; the main thread takes a batch (what is queued,
up to N messages, optionally lingering M milliseconds for more), stores it with `ingest()` in
one transaction, then acknowledges each message of it. A crash before the commit leaves the
messages unacknowledged, so the broker redelivers them to this session (same client id) or to
another member of the shared subscription; `ingest()` drops what was already stored, so nothing
is lost or stored twice.
"""

from __future__ import annotations

import logging
import queue
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from django.db import close_old_connections
from django.utils import timezone
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .services.ingest import IngestResult, RawMessage, ingest

logger = logging.getLogger(__name__)

SHARE_GROUP = "vh-ingest"
TOPIC_FILTER = "vh/devices/+/obs"
SUBSCRIPTION = f"$share/{SHARE_GROUP}/{TOPIC_FILTER}"
_GROUP_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
SESSION_EXPIRY_S = 24 * 3600  # a crashed ingestor's unacked messages wait a day for it
KEEPALIVE_S = 30
MAX_BACKOFF_S = 30.0
UNSUBSCRIBE_WAIT_S = 5.0
DRAIN_QUIET_S = 0.3  # after UNSUBACK, how long an empty queue means nothing more is coming


def subscription(group: str = SHARE_GROUP) -> str:
    """The shared subscription of `group`; ValueError unless letters, digits, - and _."""
    if not _GROUP_NAME.fullmatch(group):
        raise ValueError(f"invalid shared-subscription group {group!r}")
    return f"$share/{group}/{TOPIC_FILTER}"


def default_client_id() -> str:
    """Stable across restarts of the same host, so a restart resumes its own session."""
    return f"vh-ingest-{socket.gethostname()}"[:64]


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def parse_broker_url(url: str) -> BrokerAddress:
    """mqtt://[user[:password]@]host[:port] or mqtts://… (TLS, port 8883 by default)."""
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    return BrokerAddress(
        host=parts.hostname or "localhost",
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


@dataclass(frozen=True)
class _Received:
    generation: int  # the connection it came on: its mid means nothing on another one
    mid: int
    qos: int
    raw: RawMessage


class Ingestor:
    """One ingestor process's MQTT client and batching loop."""

    def __init__(
        self,
        url: str,
        client_id: str,
        batch_size: int = 500,
        batch_ms: int = 0,
        group: str = SHARE_GROUP,
    ) -> None:
        self.address = parse_broker_url(url)
        self.client_id = client_id
        self.subscription = subscription(group)
        self.batch_size = batch_size
        self.batch_s = batch_ms / 1000
        self.inbox: queue.Queue[_Received] = queue.Queue()
        self.stopping = threading.Event()
        self.aborting = threading.Event()
        self.unsubscribed = threading.Event()
        self._lock = threading.Lock()  # guards generation against acks racing a reconnect
        self._generation = 0
        self._connected = False
        self.totals = IngestResult()
        self.batches = 0
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if self.address.username:
            client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_unsubscribe = self._on_unsubscribe
        client.on_subscribe = self._on_subscribe
        return client

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        # Bounds what the broker sends us unacknowledged (and so our queue's memory).
        props.ReceiveMaximum = min(65535, max(2 * self.batch_size, 100))
        return props

    # paho network thread -------------------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            logger.error("MQTT connection refused: %s", reason)
            return
        with self._lock:
            self._generation += 1
            self._connected = True
        logger.info(
            "MQTT connected as %s (session present: %s)", self.client_id, flags.session_present
        )
        if not self.stopping.is_set():
            client.subscribe(self.subscription, qos=1)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            self._generation += 1
            self._connected = False
        if not self.stopping.is_set():
            logger.warning("MQTT disconnected (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        raw = RawMessage(
            payload=bytes(msg.payload),
            transport="mqtt",
            topic=msg.topic,
            received_at=timezone.now(),
        )
        self.inbox.put(_Received(self._generation, msg.mid, msg.qos, raw))

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if any(r.is_failure for r in reasons):
            logger.error("MQTT subscription to %s refused: %s", self.subscription, reasons)
        else:
            logger.info("MQTT subscribed to %s", self.subscription)

    def _on_unsubscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self.unsubscribed.set()

    # main thread ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        """First call: stop taking new messages and drain; second call: give up at once."""
        if self.stopping.is_set():
            self.aborting.set()
        self.stopping.set()

    def _take_batch(self, wait_s: float) -> list[_Received]:
        """What is queued, up to the batch size; once the queue is dry, wait `batch_ms` more.

        With the default `batch_ms` of 0 a lone message is stored at once (low latency at low
        load) while under load the queue refills during each commit, so batches grow by
        themselves up to the batch size.
        """
        try:
            first = self.inbox.get(timeout=wait_s)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_s
        while len(batch) < self.batch_size:
            try:
                batch.append(self.inbox.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self.inbox.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _store(self, batch: list[_Received]) -> bool:
        """Ingest until committed (backing off while the database is down); False if aborted."""
        delay = 0.5
        while True:
            started = time.monotonic()
            try:
                result = ingest([item.raw for item in batch])
            except Exception:
                logger.exception(
                    "storing a batch of %d messages failed; retrying in %.1f s", len(batch), delay
                )
                close_old_connections()
                if self.aborting.wait(delay):
                    return False
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            self._ack(batch)
            self._summarise(batch, result, time.monotonic() - started)
            return True

    def _ack(self, batch: list[_Received]) -> None:
        with self._lock:
            generation, connected = self._generation, self._connected
            stale = 0
            for item in batch:
                if item.generation != generation or not connected:
                    stale += 1  # redelivered on the new connection; ingest() drops the copy
                    continue
                self.client.ack(item.mid, item.qos)
        if stale:
            logger.info("%d messages came on an earlier connection; not acknowledged", stale)

    def _summarise(self, batch: list[_Received], result: IngestResult, elapsed: float) -> None:
        self.batches += 1
        totals = self.totals
        totals.messages_stored += result.messages_stored
        totals.stored += result.stored
        totals.duplicates += result.duplicates
        totals.dead_lettered += result.dead_lettered
        logger.info(
            "batch messages=%d stored_messages=%d readings=%d duplicates=%d dead_lettered=%d ms=%d",
            len(batch),
            result.messages_stored,
            result.stored,
            result.duplicates,
            result.dead_lettered,
            elapsed * 1000,
        )

    def _drain(self) -> bool:
        """After a stop request: unsubscribe, store and ack what already arrived, then leave."""
        if self._connected:
            self.client.unsubscribe(self.subscription)
            if not self.unsubscribed.wait(UNSUBSCRIBE_WAIT_S):
                logger.warning("no UNSUBACK within %.0f s; draining anyway", UNSUBSCRIBE_WAIT_S)
        while not self.aborting.is_set():
            batch = self._take_batch(DRAIN_QUIET_S)
            if not batch:
                return True
            if not self._store(batch):
                return False
        return False

    def run(self) -> bool:
        """Consume until a stop request; True when everything received was stored and acked.

        The live pushes made on each commit leave through the process's pusher thread
        (apps.core.realtime), so a batch never waits for Redis before its acknowledgement.
        """
        return self._consume()

    def _consume(self) -> bool:
        self.client.connect_async(
            self.address.host,
            self.address.port,
            keepalive=KEEPALIVE_S,
            clean_start=False,
            properties=self._connect_properties(),
        )
        self.client.loop_start()  # the network thread; it reconnects by itself
        logger.info(
            "MQTT ingestor %s: %s:%d, %s, batches of %d messages / %d ms",
            self.client_id,
            self.address.host,
            self.address.port,
            self.subscription,
            self.batch_size,
            self.batch_s * 1000,
        )
        clean = False
        try:
            while not self.stopping.is_set():
                batch = self._take_batch(0.2)
                if batch and not self._store(batch):
                    break
            clean = self._drain()
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            logger.info(
                "MQTT ingestor %s stopped: batches=%d stored_messages=%d readings=%d "
                "duplicates=%d dead_lettered=%d",
                self.client_id,
                self.batches,
                self.totals.messages_stored,
                self.totals.stored,
                self.totals.duplicates,
                self.totals.dead_lettered,
            )
        return clean
