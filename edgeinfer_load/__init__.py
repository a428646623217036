# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The load engine behind ``edgeinfer_benchmark`` and ``edgeinfer-validate``.

Standard library only: it ships to edge hosts whose Python has neither numpy
nor requests. The CLI imports it as ``edgeinfer_load``; the Ansible modules
import the same files as ``ansible_collections.edgeinfer.deploy.plugins.module_utils._load``
(``plugins/module_utils/_load/`` holds one link per file of this package, as
``_contract/`` does for the contract), so the deploy gate and the operator's
command can never disagree about how a figure was measured.

How it measures
- One non-blocking HTTP/1.1 keep-alive connection per unit of concurrency,
  all driven by a single ``selectors`` event loop in the calling thread: no
  GIL hand-offs between timing threads, so a timestamp is taken as soon as
  the last byte of a response is read.
- ``closed_loop``: every connection sends its next request as soon as the
  previous response is in (the maximum throughput at that concurrency);
  a request's latency runs from its send to its last response byte.
- ``open_loop``: requests are due at a constant rate on a fixed schedule
  (``t0 + i / rate``), whatever the server does; a request's latency runs
  from its *intended* send time, so a stall also charges every request that
  had to wait for it (coordinated omission corrected, as wrk2 does). The
  latency from the actual send is kept too (``uncorrected``).
- Every request counts. A failed request (status, timeout, connection error,
  bad body) is counted by kind and its latency (time to failure, or to the
  timeout) stays in the percentiles.
- Percentiles are exact, by the nearest-rank method on the sorted samples:
  ``p`` is the smallest sample such that at least ``p`` percent of all
  samples are less than or equal to it. Every reported figure is a latency
  that some request actually had.

Pure parts (percentiles, cosine, health and embedding predicates, threshold
evaluation, Docker stats arithmetic) are plain functions so that tests can
parametrize them; waiting is driven by a ``clock(timeout, interval)``
generator that returns ``(ok, last_state, duration)``.

One module per part, each re-exported here (``from edgeinfer_load import closed_loop``):

    contract     what it takes from the release format (layout, GoldenSet, cosine)
    stats        exact percentiles and the latency summary
    requests     Target (an endpoint), Request, /encode requests and how an answer is judged
    replay       replay files of captured windows
    result       LoadResult, every request of one phase
    engine       the event loop
    loops        closed_loop and open_loop
    client       one request on a fresh connection
    health       the clock, wait_for and the /healthz judgement
    golden       the embedding probe and the golden replay
    resources    memory and CPU from Docker's stats
    thresholds   Thresholds and the evaluation of figures against them
    plan         Plan and run_benchmark, the whole benchmark
"""

from __future__ import annotations

from .client import http_get_json, http_request
from .contract import CHANNELS, LATENT_DIM, WINDOW, GoldenSet, cosine
from .golden import ERROR_WORDS, error_code_of, golden_replay, probe_embedding
from .health import check_health, clock, health_problems, wait_for
from .loops import closed_loop, open_loop
from .plan import MAX_RATE, MAX_SECONDS, MAX_TIMEOUT_S, Plan, run_benchmark, within
from .replay import MAX_REPLAY_WINDOWS, WINDOW_BYTES, load_replay, replay_requests, replay_windows
from .requests import (
    Request,
    Target,
    embedding_from_response,
    embedding_ok,
    embedding_problem,
    encode_request,
    status_ok,
    synthetic_window,
)
from .resources import (
    DockerSocket,
    ResourceSampler,
    container_name,
    docker_cpu_percent,
    docker_memory_bytes,
    docker_ps_ports,
    host_network,
    parse_docker_cli_stats,
    pick_container,
    published_ports,
    socket_sampler,
    ssh_sampler,
)
from .result import LoadResult
from .stats import PERCENTILE_CURVE, percentile, summarize
from .thresholds import CHECKS, DEFAULT_THRESHOLDS, MAX_UNSENT_FRACTION, Thresholds, evaluate

__all__ = [
    "CHANNELS",
    "CHECKS",
    "DEFAULT_THRESHOLDS",
    "DockerSocket",
    "ERROR_WORDS",
    "GoldenSet",
    "LATENT_DIM",
    "LoadResult",
    "MAX_REPLAY_WINDOWS",
    "MAX_UNSENT_FRACTION",
    "PERCENTILE_CURVE",
    "MAX_RATE",
    "MAX_SECONDS",
    "MAX_TIMEOUT_S",
    "Plan",
    "Request",
    "ResourceSampler",
    "Target",
    "Thresholds",
    "WINDOW",
    "WINDOW_BYTES",
    "check_health",
    "clock",
    "closed_loop",
    "container_name",
    "cosine",
    "docker_cpu_percent",
    "docker_memory_bytes",
    "docker_ps_ports",
    "embedding_from_response",
    "embedding_ok",
    "embedding_problem",
    "encode_request",
    "error_code_of",
    "evaluate",
    "golden_replay",
    "health_problems",
    "host_network",
    "http_get_json",
    "http_request",
    "load_replay",
    "open_loop",
    "parse_docker_cli_stats",
    "percentile",
    "pick_container",
    "probe_embedding",
    "published_ports",
    "replay_requests",
    "replay_windows",
    "run_benchmark",
    "socket_sampler",
    "ssh_sampler",
    "status_ok",
    "summarize",
    "synthetic_window",
    "wait_for",
    "within",
]
