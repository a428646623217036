"""The pure parts of the engine: percentiles, cosine, predicates, thresholds, Docker arithmetic, waiting."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from edgeinfer_validate import loadgen as lg


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50, 5),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90, 9),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 91, 10),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 100, 10),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0, 1),
        ([7.5], 99, 7.5),
        ([15, 20, 35, 40, 50], 30, 20),  # the textbook nearest-rank example
        ([15, 20, 35, 40, 50], 40, 20),
        ([15, 20, 35, 40, 50], 50, 35),
    ],
)
def test_percentile_is_nearest_rank(values, p, expected):
    assert lg.percentile(values, p) == expected


def test_percentile_of_nothing_is_nan_and_out_of_range_refused():
    assert math.isnan(lg.percentile([], 50))
    with pytest.raises(ValueError):
        lg.percentile([1.0], 101)


def test_one_percent_slow_sits_just_past_p99():
    """100 slow samples in 10 000: p99 is the last fast one, p99.1 and up are slow (nothing interpolated)."""
    s = sorted([1.0] * 9900 + [20.0] * 100)
    assert lg.percentile(s, 99) == 1.0
    assert lg.percentile(s, 99.01) == 20.0
    assert lg.summarize(s)["p999_ms"] == 20.0


def test_summarize_keeps_every_sample():
    out = lg.summarize([3.0, 1.0, 2.0, 100.0])
    assert out["count"] == 4 and out["max_ms"] == 100.0 and out["min_ms"] == 1.0
    assert out["mean_ms"] == pytest.approx(26.5)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([1, 0], [1, 0], 1.0),
        ([1, 0], [0, 1], 0.0),
        ([1, 2, 3], [-1, -2, -3], -1.0),
        ([1, 0], [1, 0, 0], -1.0),  # length mismatch is a miss
        ([0, 0], [1, 1], -1.0),  # zero vector is a miss
        ([math.nan, 1], [1, 1], -1.0),
        ([], [], -1.0),
    ],
)
def test_cosine(a, b, expected):
    assert lg.cosine(a, b) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ([0.1] * 64, None),
        ([0.1] * 63, "expected 64 values, got 63"),
        ([0.1] * 63 + [math.inf], "value [63]"),
        ([0.1] * 63 + [True], "value [63]"),
        ([0.0] * 64, "all values are zero"),
        ("nope", "expected a list"),
    ],
)
def test_embedding_problem(values, problem):
    got = lg.embedding_problem(values)
    assert got == problem if problem is None else problem in got


@pytest.mark.parametrize(
    ("status", "ctype", "body", "kind"),
    [
        (200, "application/json", json.dumps({"latent_embedding": [0.5] * 64}).encode(), None),
        (200, "application/json", json.dumps({"latent_embedding": [0.5] * 10}).encode(), "bad_body"),
        (200, "application/json", b"{not json", "bad_body"),
        (200, "application/octet-stream", b"\x00\x00\x80\x3f" * 64, None),
        (200, "application/octet-stream", b"\x00" * 12, "bad_body"),
        (503, "application/json", b"{}", "status_503"),
    ],
)
def test_embedding_validator(status, ctype, body, kind):
    assert lg.embedding_ok(status, ctype, body) == kind


HEALTHY = {"status": "ok", "model_version": "v72pct", "model_sha256": "ab" * 32, "normalization_hash": "cd" * 32}


@pytest.mark.parametrize(
    ("status", "body", "expect", "fragment"),
    [
        (200, HEALTHY, {}, None),
        (200, HEALTHY, {"model_version": "v72pct", "model_sha256": "abababab"}, None),
        (200, HEALTHY, {"model_version": None}, None),
        (200, HEALTHY, {"model_version": "v57"}, "model_version is 'v72pct', expected 'v57'"),
        (200, HEALTHY, {"model_sha256": "abab"}, "model_sha256"),  # too short to identify a model
        (200, HEALTHY, {"model_sha256": "ff" * 32}, "model_sha256"),
        (200, HEALTHY, {"normalization_hash": "ee" * 32}, "golden set is for another model"),
        (503, {"status": "unavailable", "reason": "no release"}, {}, "answered 503 (no release)"),
        (200, None, {}, "JSON object"),
        (None, None, {}, "did not answer"),
    ],
)
def test_health_problems(status, body, expect, fragment):
    problems = lg.health_problems(status, body, expect)
    if fragment is None:
        assert problems == []
    else:
        assert any(fragment in p for p in problems), problems


def _figures(**over):
    f = {
        "health": {"ok": True, "status": 200, "problems": []},
        "latency_p95_ms": 10.0,
        "throughput_rps": 900.0,
        "success_rate": 1.0,
        "quality": {"ok": True, "problems": [], "min_cosine": 0.9999},
        "memory": {"measured": True, "memory_peak_mb": 200.0, "samples": 5, "reason": ""},
    }
    f.update(over)
    return f


@pytest.mark.parametrize(
    ("over", "targets", "failed"),
    [
        ({}, lg.Targets(), []),
        ({"latency_p95_ms": 50.0}, lg.Targets(), ["latency"]),  # "P95 < 50 ms": 50 is a miss
        ({"latency_p95_ms": math.nan}, lg.Targets(), ["latency"]),
        ({"throughput_rps": 250.0}, lg.Targets(), ["throughput"]),  # "> 250 req/s"
        ({"success_rate": 0.99}, lg.Targets(), ["success"]),  # "> 99 %"
        ({"memory": {"measured": True, "memory_peak_mb": 512.0, "samples": 3, "reason": ""}}, lg.Targets(), ["memory"]),
        (
            {"memory": {"measured": False, "memory_peak_mb": None, "samples": 0, "reason": "no socket"}},
            lg.Targets(),
            ["memory"],
        ),
        (
            {"memory": {"measured": False, "memory_peak_mb": None, "samples": 0, "reason": "x"}},
            lg.Targets(max_memory_mb=None),
            [],
        ),
        (
            {"quality": {"ok": False, "problems": ["window 3: cosine 0.5 < 0.99"], "min_cosine": 0.5}},
            lg.Targets(),
            ["quality"],
        ),
        ({"health": {"ok": False, "status": 503, "problems": ["down"]}}, lg.Targets(), ["health"]),
        ({"latency_p95_ms": 20.0}, lg.Targets(p95_ms=10), ["latency"]),
    ],
)
def test_evaluate(over, targets, failed):
    checks = lg.evaluate(_figures(**over), targets)
    assert [c["name"] for c in checks] == list(lg.CHECKS)
    assert [c["name"] for c in checks if c["status"] == "failed"] == failed


def test_evaluate_marks_phases_that_did_not_run():
    checks = {
        c["name"]: c for c in lg.evaluate({"health": {"ok": False, "status": None, "problems": ["x"]}}, lg.Targets())
    }
    assert checks["health"]["status"] == "failed"
    assert {checks[n]["status"] for n in ("latency", "throughput", "success", "quality", "memory")} == {"not_run"}
    assert not any(checks[n]["passed"] for n in ("latency", "throughput", "success", "quality", "memory"))


V2 = {"memory_stats": {"usage": 300 * 2**20, "stats": {"inactive_file": 100 * 2**20}}}
V1 = {"memory_stats": {"usage": 300 * 2**20, "stats": {"total_inactive_file": 50 * 2**20, "cache": 80 * 2**20}}}


@pytest.mark.parametrize(
    ("stats", "mib"),
    [(V2, 200), (V1, 250), ({"memory_stats": {"usage": 64 * 2**20}}, 64), ({"memory_stats": {}}, None), ({}, None)],
)
def test_docker_memory_excludes_inactive_cache(stats, mib):
    got = lg.docker_memory_bytes(stats)
    assert (got / 2**20 if got is not None else None) == mib


def _cpu(total, system, n=4):
    return {"cpu_stats": {"cpu_usage": {"total_usage": total}, "system_cpu_usage": system, "online_cpus": n}}


@pytest.mark.parametrize(
    ("prev", "cur", "pct"),
    [
        (_cpu(0, 0), _cpu(1_000, 4_000), 100.0),  # one of four cores busy = 100 %
        (_cpu(0, 0), _cpu(2_000, 4_000), 200.0),
        (None, _cpu(1, 1), None),
        (_cpu(5, 5), _cpu(6, 5), None),  # no system time passed
    ],
)
def test_docker_cpu_percent(prev, cur, pct):
    assert lg.docker_cpu_percent(prev, cur) == (pytest.approx(pct) if pct is not None else None)


@pytest.mark.parametrize(
    ("line", "mem", "cpu"),
    [
        ('{"MemUsage":"123.5MiB / 15.84GiB","CPUPerc":"12.34%"}', int(123.5 * 2**20), 12.34),
        ('{"MemUsage":"1.5GiB / 2GiB","CPUPerc":"0.00%"}', int(1.5 * 2**30), 0.0),
        ('{"MemUsage":"512kB / 1GB","CPUPerc":"--"}', 512_000, None),
    ],
)
def test_parse_docker_cli_stats(line, mem, cpu):
    assert lg.parse_docker_cli_stats(line) == (mem, cpu)


def test_clock_yields_until_timeout_with_fake_time():
    t = itertools.count(0.0, 1.0)
    now = [0.0]
    slept = []

    def fake_now():
        return now[0]

    def fake_sleep(s):
        slept.append(s)
        now[0] += s

    ticks = list(lg.clock(5.0, 2.0, now=fake_now, sleep=fake_sleep))
    assert ticks == [0.0, 2.0, 4.0]
    assert slept == [2.0, 2.0]
    del t


def test_wait_for_returns_ok_last_state_and_duration():
    states = iter(["starting", "starting", "ok", "never"])
    ok, last, duration = lg.wait_for(lambda: next(states), lambda s: s == "ok", 10, ticks=iter([0.0, 1.0, 2.0, 3.0]))
    assert (ok, last, duration) == (True, "ok", 2.0)
    ok, last, duration = lg.wait_for(lambda: "down", lambda s: s == "ok", 10, ticks=iter([0.0, 1.0]))
    assert (ok, last, duration) == (False, "down", 1.0)


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n", b"Wikipedia"),
        (b"4\r\nWiki\r\n5\r\nped", None),
        (b"0\r\n\r\n", b""),
        (b"a;ext=1\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
    ],
)
def test_chunked_body(raw, body):
    assert lg._chunked_body(bytearray(b"HEAD" + raw), 4) == body


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [("http://127.0.0.1:9000", "127.0.0.1", 9000), ("edge:9001", "edge", 9001), ("http://[::1]:80/x", "::1", 80)],
)
def test_target_parse(url, host, port):
    t = lg.Target.parse(url)
    assert (t.host, t.port) == (host, port)


def test_target_parse_refuses_https():
    with pytest.raises(ValueError, match="only http"):
        lg.Target.parse("https://edge:9000")


def test_request_wire_is_http11_with_length():
    req = lg.encode_request(binary=True)
    wire = req.wire(lg.Target("127.0.0.1", 9000))
    head, _, body = wire.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /encode HTTP/1.1\r\nHost: 127.0.0.1:9000")
    assert b"Content-Length: 3600" in head and len(body) == 3600
    assert b"Accept: application/octet-stream" in head


def test_synthetic_window_is_deterministic_raw_units():
    w = lg.synthetic_window()
    assert w == lg.synthetic_window() and len(w) == 100 and all(len(r) == 9 for r in w)
    az = [r[2] for r in w]
    assert 5 < sum(az) / len(az) < 15  # gravity on z, in m/s^2: raw, not normalized


def test_the_last_partial_second_of_a_timeline_is_marked() -> None:
    res = lg.LoadResult("open", 4, 10.0, 2.5, elapsed_s=2.5)
    res.completed_at_s = [0.1, 0.9, 1.2, 1.8, 2.2, 2.4]
    res.latencies_ms = [1.0, 1.0, 2.0, 2.0, 9.0, 9.0]
    res.ok = [True] * 6
    tl = res.timeline()
    assert [(b["t_s"], b["seconds"], b["partial"]) for b in tl] == [(0, 1.0, False), (1, 1.0, False), (2, 0.5, True)]
    assert sum(b["requests"] for b in tl) == 6


def test_the_latency_axis_is_labelled_in_plain_milliseconds() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgeinfer_validate.report import plain_ms_log_axis

    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [0.8, 3.0, 40.0])
    plain_ms_log_axis(ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    plt.close(fig)
    assert labels and all("10^" not in t and "times" not in t and "$" not in t for t in labels), labels
    assert {"1", "2", "5", "10", "20"} <= set(labels), labels
