"""Slow and greedy clients on real sockets against a live collector (issue 19): a connection that
sends nothing, stops mid-headers, drips its headers or its body, keeps sending a body after its
answer, or floods headers is closed; connections over the cap are refused at once.

The collector runs with deadlines of a second or less; a test fails when a connection is still
open after CEILING_S, many times any deadline, so a loaded machine only makes it slower."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from pipelines.broker import EmbeddedBroker
from pipelines.collector import CollectorSettings
from tests.collector.conftest import collector_settings
from tests.collector.helpers import WEB_KEY, LiveCollector, basic, metric

pytestmark = pytest.mark.timeout(120)

CEILING_S = 20.0
DRIP_EVERY_S = 0.2
SHORT = {"idle_timeout_s": 0.5, "header_timeout_s": 1.0, "body_timeout_s": 1.0}


@pytest.fixture
def guarded(broker: EmbeddedBroker, topic: str) -> Iterator[LiveCollector]:
    with LiveCollector(collector_settings(broker.bootstrap, topic, **SHORT)) as live:
        yield live


def connect(live: LiveCollector) -> socket.socket:
    return socket.create_connection(("127.0.0.1", live.port), timeout=CEILING_S)


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails after CEILING_S)."""
    sock.settimeout(CEILING_S)
    received = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return received
        except TimeoutError:
            raise AssertionError(f"still open after {CEILING_S}s; got {received[:200]!r}") from None
        if not data:
            return received
        received += data


def drip(sock: socket.socket, data: bytes) -> bytes | None:
    """Send `data` a byte every DRIP_EVERY_S. What the server sent, if it closed the connection
    before the last byte; None if all of it went out."""
    received = b""
    for i in range(len(data)):
        try:
            sock.sendall(data[i : i + 1])
        except (BrokenPipeError, ConnectionResetError):
            return received + until_closed(sock)
        readable, _, _ = select.select([sock], [], [], DRIP_EVERY_S)
        if readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk
    return None


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


HEADERS = (
    b"POST /v1/batch HTTP/1.1\r\nHost: collector\r\nContent-Type: application/json\r\n"
    + b"".join(b"X-Padding-%d: %s\r\n" % (i, b"p" * 20) for i in range(10))
)


def test_a_connection_that_sends_nothing_is_closed(guarded: LiveCollector) -> None:
    with connect(guarded) as sock:
        assert until_closed(sock) == b""


def test_a_request_stopped_mid_headers_gets_408_and_is_closed(guarded: LiveCollector) -> None:
    with connect(guarded) as sock:
        sock.sendall(HEADERS[:60])
        answer = until_closed(sock)
    assert status(answer) == 408
    assert b'"code": "timeout"' in answer


def test_headers_sent_a_byte_at_a_time_are_cut_off(guarded: LiveCollector) -> None:
    # every byte well within the idle timeout, the whole far beyond the header timeout
    with connect(guarded) as sock:
        answer = drip(sock, HEADERS + b"\r\n")
    assert answer is not None, "the headers were taken however long they took"
    assert status(answer) == 408


def test_a_stalled_body_gets_408_and_is_closed(guarded: LiveCollector) -> None:
    with connect(guarded) as sock:
        sock.sendall(HEADERS + b"Content-Length: 200\r\n\r\n" + b'{"batch": [')
        answer = until_closed(sock)
    assert status(answer) == 408
    assert b"connection: close" in answer.lower()


def test_a_body_sent_a_byte_at_a_time_is_cut_off(guarded: LiveCollector) -> None:
    with connect(guarded) as sock:
        sock.sendall(HEADERS + b"Content-Length: 200\r\n\r\n")
        answer = drip(sock, b" " * 200)
    assert answer is not None, "the body was taken however long it took"
    assert status(answer) == 408


def test_a_body_sent_after_its_answer_is_not_waited_for(guarded: LiveCollector) -> None:
    # refused before the body is read (a wrong key); the client goes on sending it slowly
    with connect(guarded) as sock:
        auth = basic("wrong-key")["Authorization"].encode()
        sock.sendall(HEADERS + b"Authorization: " + auth + b"\r\nContent-Length: 200\r\n\r\n")
        answer = drip(sock, b" " * 200)
    assert answer is not None, "the connection stayed open for the whole unread body"
    assert status(answer) == 401


def test_a_kept_alive_connection_is_closed_when_idle(guarded: LiveCollector) -> None:
    with connect(guarded) as sock:
        sock.sendall(b"GET /tracker.js HTTP/1.1\r\nHost: collector\r\n\r\n")
        answer = until_closed(sock)
    assert status(answer) == 200
    assert b"sendBeacon" in answer


def test_oversized_headers_get_431(guarded: LiveCollector) -> None:
    with connect(guarded) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: collector\r\n")
        line = b"X-Flood: " + b"f" * 8000 + b"\r\n"
        try:
            for _ in range(1000):  # 8 MB, unless the collector stops it first
                sock.sendall(line)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = until_closed(sock)
    assert status(answer) in (431, 0)  # a reset may swallow the answer; the close is the point


def test_requests_within_the_deadlines_are_served(guarded: LiveCollector) -> None:
    with httpx.Client(base_url=guarded.url, timeout=CEILING_S) as client:
        for _ in range(3):  # the same kept-alive connection, used within the idle timeout
            event = {"event": "fine", "anonymousId": "a"}
            assert client.post("/v1/track", json=event, headers=basic(WEB_KEY)).status_code == 200
        metrics = client.get("/metrics").text
    assert (
        metric(metrics, "trackflow_collector_requests_total", endpoint="/v1/track", status="200")
        == 3
    )


def test_closed_connections_are_counted(guarded: LiveCollector) -> None:
    with connect(guarded) as sock:
        until_closed(sock)
    with connect(guarded) as sock:
        sock.sendall(HEADERS[:30])
        until_closed(sock)
    metrics = httpx.get(f"{guarded.url}/metrics").text
    assert metric(metrics, "trackflow_collector_connections_closed_total", reason="idle") >= 1
    closed = metric(
        metrics, "trackflow_collector_connections_closed_total", reason="header_timeout"
    )
    assert closed == 1


def _served(live: LiveCollector) -> bytes:
    with connect(live) as sock:
        sock.sendall(b"GET /tracker.js HTTP/1.1\r\nHost: collector\r\nConnection: close\r\n\r\n")
        return until_closed(sock)


def test_connections_over_the_cap_are_refused_at_once(broker: EmbeddedBroker, topic: str) -> None:
    settings: CollectorSettings = collector_settings(
        broker.bootstrap, topic, max_connections=3, idle_timeout_s=60.0
    )
    with LiveCollector(settings) as live:
        held = [connect(live) for _ in range(3)]
        try:
            for sock in held:  # each served once and kept alive, so each surely counted
                sock.sendall(b"GET /tracker.js HTTP/1.1\r\nHost: collector\r\n\r\n")
                sock.settimeout(CEILING_S)
                assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            with connect(live) as extra:
                answer = until_closed(extra)
            assert status(answer) == 503
            assert b"retry-after: 7" in answer.lower()
        finally:
            held.pop().close()
        # a place is free again once the collector has seen that close
        for _ in range(100):
            if status(answer := _served(live)) == 200:
                break
            time.sleep(0.1)
        assert status(answer) == 200
        for sock in held:
            sock.close()
        metrics = httpx.get(f"{live.url}/metrics").text
    assert metric(metrics, "trackflow_collector_connections_closed_total", reason="over_limit") >= 1
