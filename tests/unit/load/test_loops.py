"""edgeinfer_load.loops: the engine against a server whose delays and failures the test controls."""

from __future__ import annotations

import math
import socket

import pytest

import edgeinfer_load as lg

PLAIN = lg.Request("GET", "/")


def test_closed_loop_sends_exactly_max_requests_on_persistent_connections(server):
    res = lg.closed_loop(server.target, PLAIN, concurrency=4, max_requests=500)
    assert res.requests == 500 and res.failed == 0 and res.success_rate == 1.0
    stats = server.stats()
    assert stats["requests"] == 500
    # keep-alive: 4 connections for 500 requests (the old validator opened one per request); +1 is this query
    assert stats["connections"] == 4 + 1
    assert res.connects == 4


def test_error_statuses_are_counted_exactly(server_factory):
    s = server_factory("--error-every", "7", "--error-status", "503")
    res = lg.closed_loop(s.target, PLAIN, concurrency=3, max_requests=700)
    assert res.failures == {"status_503": 100}
    assert res.requests == 700 and res.successes == 600
    assert res.success_rate == pytest.approx(600 / 700)


def test_timeouts_stay_in_the_percentiles(server_factory):
    """Every 10th request outlives the timeout: it fails, and its time to failure is in p95."""
    s = server_factory("--slow-every", "10", "--slow-ms", "400")
    res = lg.closed_loop(s.target, PLAIN, concurrency=4, max_requests=200, timeout_s=0.1)
    assert res.failures == {"timeout": 20}
    lat = lg.summarize(res.latencies_ms)
    assert lat["count"] == 200
    assert 100.0 <= lat["p95_ms"] < 150.0  # dropping failures would give well under a millisecond
    assert lat["p50_ms"] < 20.0


def test_dropped_connections_are_failures_and_the_engine_reconnects(server_factory):
    s = server_factory("--drop-every", "50")
    res = lg.closed_loop(s.target, PLAIN, concurrency=2, max_requests=500)
    assert res.failures == {"connection": 10}
    assert res.requests == 500
    assert s.stats()["requests"] == 500


def test_a_keep_alive_connection_the_server_closed_while_idle_is_replaced_not_failed(server_factory):
    """A server's idle timeout (uvicorn's timeout_keep_alive) closes connections the open loop
    left idle; the engine opens new ones before sending, as a client pool does."""
    s = server_factory("--idle-timeout", "0.02")
    # 20 req/s: a connection waits 50 ms for its next request, and the server closes it after 20.
    res = lg.open_loop(s.target, PLAIN, rate=20, duration_s=2.0, concurrency=4)
    stats = s.stats()
    assert stats["idle_closed"] >= 30, stats  # the server did close the idle connections
    assert res.failed == 0 and res.requests == 40, res.failures
    assert res.connects >= 30, res.connects  # each one was replaced when it was next needed
    assert stats["requests"] == 40


def test_connection_close_is_not_a_failure(server_factory):
    s = server_factory("--close-every", "5")
    res = lg.closed_loop(s.target, PLAIN, concurrency=2, max_requests=200)
    assert res.failed == 0 and res.requests == 200
    assert res.connects >= 200 // 5  # a new connection after each close


def test_bad_bodies_are_failures(server_factory):
    s = server_factory("--bad-body-every", "10")
    res = lg.closed_loop(s.target, lg.encode_request(), concurrency=2, max_requests=300)
    assert res.failures == {"bad_body": 30}


def test_binary_payload_round_trip(server):
    res = lg.closed_loop(server.target, lg.encode_request(binary=True), concurrency=2, max_requests=50)
    assert res.failed == 0


def test_every_50th_request_slow_shows_in_p99(server_factory):
    s = server_factory("--slow-every", "50", "--slow-ms", "20")
    res = lg.closed_loop(s.target, PLAIN, concurrency=4, max_requests=2000)
    lat = lg.summarize(res.latencies_ms)
    assert lat["p99_ms"] >= 20.0
    assert lat["p50_ms"] < 10.0


def test_every_100th_request_slow_is_exactly_one_percent(server_factory):
    """1 % slow: each delayed request is there (at and past p99.1); nearest rank puts p99 just before them."""
    s = server_factory("--slow-every", "100", "--slow-ms", "20")
    res = lg.closed_loop(s.target, PLAIN, concurrency=4, max_requests=3000)
    slow = sum(1 for ms in res.latencies_ms if ms >= 20.0)
    assert slow >= 30  # none dropped
    assert slow <= 30 + 15  # and the rest are not all slow (loose: this machine is shared)
    lat = lg.summarize(res.latencies_ms)
    assert lat["p999_ms"] >= 20.0 and lat["max_ms"] >= 20.0


def test_open_loop_keeps_its_rate_and_counts_every_intended_request(server):
    res = lg.open_loop(server.target, PLAIN, rate=400, duration_s=1.5, concurrency=8)
    assert res.intended == 600 and res.requests == 600 and res.failed == 0
    assert res.rps == pytest.approx(400, rel=0.05)
    assert server.stats()["requests"] == 600


def test_coordinated_omission_correction_shows_the_stall(server_factory):
    """The server freezes for 300 ms; with 4 connections only 4 requests are stuck on the wire, but every
    request due during the freeze waited for it. Corrected latencies show that; uncorrected ones, like a
    closed loop, see only the stuck few."""
    s = server_factory("--pause-at-s", "0.8", "--pause-s", "0.3")
    res = lg.open_loop(s.target, PLAIN, rate=200, duration_s=2.0, concurrency=4)
    assert res.requests == 400 and res.failed == 0
    corrected_slow = sum(1 for ms in res.latencies_ms if ms >= 100.0)
    uncorrected_slow = sum(1 for ms in res.uncorrected_ms if ms >= 100.0)
    assert corrected_slow >= 30  # about 0.2 s x 200/s = 40 requests waited 100 ms or more
    assert uncorrected_slow <= 4
    assert lg.summarize(res.latencies_ms)["p99_ms"] >= 200.0
    assert lg.summarize(res.uncorrected_ms)["p95_ms"] < 50.0


def test_closed_loop_hides_the_same_stall(server_factory):
    s = server_factory("--pause-at-s", "0.5", "--pause-s", "0.3")
    res = lg.closed_loop(s.target, PLAIN, concurrency=4, duration_s=1.5)
    assert sum(1 for ms in res.latencies_ms if ms >= 100.0) <= 4  # why the open loop gates latency


def test_open_loop_counts_what_it_could_not_send(server_factory):
    """A server slower than the rate: requests still waiting at the end are counted, with their wait, not omitted;
    the server never saw them, so they are apart from its success rate."""
    s = server_factory("--delay-ms", "50")
    res = lg.open_loop(s.target, PLAIN, rate=100, duration_s=1.0, concurrency=2)
    assert res.intended == 100 and res.requests == 100
    assert res.unsent == res.failures["unsent"] >= 40 and res.sent == 100 - res.unsent
    assert s.stats()["requests"] == res.sent
    assert res.success_rate == 1.0  # every request it was sent, it answered
    assert res.to_dict()["unsent"] == res.unsent
    assert lg.summarize(res.latencies_ms)["p95_ms"] >= 300.0  # the backlog's wait


def test_refused_connections_fail_fast_and_stop_by_themselves():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        res = lg.closed_loop(lg.Target("127.0.0.1", port), PLAIN, concurrency=2, duration_s=0.3)
    assert res.requests > 0 and set(res.failures) == {"connect"} and res.successes == 0


def test_timeline_has_one_bin_per_second(server):
    res = lg.open_loop(server.target, PLAIN, rate=100, duration_s=2.0, concurrency=4)
    tl = res.timeline()
    assert [b["t_s"] for b in tl][:2] == [0, 1]
    assert sum(b["requests"] for b in tl) == res.requests
    d = res.to_dict()
    assert d["percentile_curve"][-1][1] == d["latency"]["max_ms"]


def test_progress_is_reported(server):
    seen = []
    lg.closed_loop(server.target, PLAIN, concurrency=2, duration_s=1.2, on_progress=seen.append)
    assert seen and seen[-1]["requests"] > 0 and seen[-1]["mode"] == "closed"


def test_arguments_that_would_never_stop_are_refused(server):
    with pytest.raises(ValueError, match="must stop by itself"):
        lg.closed_loop(server.target, PLAIN, concurrency=1)
    with pytest.raises(ValueError):
        lg.open_loop(server.target, PLAIN, rate=0, duration_s=1)


@pytest.mark.parametrize(
    "call",
    [
        lambda t: lg.open_loop(t, PLAIN, rate=math.inf, duration_s=1),  # OverflowError in the schedule's count
        lambda t: lg.open_loop(t, PLAIN, rate=math.nan, duration_s=1),
        lambda t: lg.open_loop(t, PLAIN, rate=100, duration_s=math.inf),
        lambda t: lg.open_loop(t, PLAIN, rate=100, duration_s=math.nan),
        lambda t: lg.closed_loop(t, PLAIN, concurrency=1, duration_s=math.nan),  # it never stopped
        lambda t: lg.closed_loop(t, PLAIN, concurrency=1, duration_s=math.inf),
        lambda t: lg.closed_loop(t, PLAIN, concurrency=1, max_requests=1, timeout_s=math.nan),
    ],
)
def test_non_finite_rates_durations_and_timeouts_are_refused(call):
    with pytest.raises(ValueError, match="must be a positive number"):
        call(lg.Target("127.0.0.1", 9))  # refused before any connection
