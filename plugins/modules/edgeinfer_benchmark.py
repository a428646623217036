#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: edgeinfer_benchmark
short_description: Load-test an EdgeInfer sidecar on the managed host and gate on the deploy targets
version_added: "0.1.0"
description:
  - Runs on the edge itself against the sidecar's HTTP API, with the same load engine as the
    C(edgeinfer-validate) command (the package C(edgeinfer_load), shipped as C(plugins/module_utils/_load/);
    standard library only).
  - "Phases: C(GET /healthz) (200 and the expected model), one C(/encode) answer checked for 64 finite
    values, the golden set replayed when O(golden) is given (cosine against the reference embeddings),
    a warm-up, a closed loop at O(concurrency) (maximum throughput), and an open loop at a constant
    O(rate) whose latencies run from each request's intended send time (coordinated omission corrected)."
  - Every request counts. Failures are counted by kind (C(status_NNN), C(timeout), C(connect),
    C(connection), C(bad_body), C(protocol), C(unsent)) and stay in the percentiles with their time to
    failure. Percentiles are exact (nearest rank over all samples). A request the open loop could not send in
    time (C(unsent)) is the load's shortfall, not the server's; the success rate is over the requests sent, and
    the C(latency) check fails when more than 1 % of the open loop's schedule went unsent (the server was then
    tested at a lower rate than asked).
  - Memory and CPU of the sidecar container are sampled during the load from the local Docker Engine API
    (O(docker_socket)), from the container that publishes the port of O(url) (another sidecar on the host
    must not stand in for it; one on the host's network publishes nothing and is measured when O(container)
    names it). When they cannot be read, memory is reported as not measured, with the reason, and the
    C(memory) check fails, unless O(skip_memory=true).
  - Every number is refused, naming the option, unless finite and in its range, before any request is sent;
    the ranges are those of C(python -m edgeinfer_validate).
  - "The checks and their defaults are the deployment guide's targets: O(thresholds.p95_ms) (open-loop p95, or
    closed-loop when O(rate=0)), O(thresholds.min_rps) (closed-loop successful requests per second),
    O(thresholds.min_success_rate) (over the load requests sent), O(thresholds.max_memory_mb) (peak)."
author:
  - EdgeInfer deploy team (@edgeinfer)
extends_documentation_fragment:
  - edgeinfer.deploy.attributes
  - edgeinfer.deploy.attributes.actiongroup_sidecar_http
options:
  url:
    description: Base URL of the sidecar, as seen from the managed host.
    type: str
    default: http://127.0.0.1:9000
  path:
    description: The endpoint under load.
    type: str
    default: /encode
  payload:
    description: 'How windows are sent: JSON C({"imu_window": 100x9}) or 3600 bytes of little-endian float32.'
    type: str
    choices: [json, binary]
    default: json
  concurrency:
    description: Connections of the closed-loop phase.
    type: int
    default: 16
  duration:
    description: Seconds of each load phase (closed loop, then open loop), above 0 and at most 86400.
    type: float
    default: 10
  warmup:
    description: Seconds of unrecorded load before the measured phases, from 0 to 86400.
    type: float
    default: 2
  rate:
    description:
      - Requests per second of the open-loop phase. Omitted, it is O(thresholds.min_rps), so that the
        latency target is judged at the required throughput.
      - V(0) skips the open-loop phase; the latency check then uses the closed loop's p95. At most 100000.
    type: float
  open_concurrency:
    description: Most requests in flight during the open loop.
    type: int
    default: 64
  timeout:
    description: Seconds after which a request counts as failed (kind C(timeout)), above 0 and at most 3600.
    type: float
    default: 5
  wait:
    description: Seconds to wait for C(/healthz) to become healthy before judging it, from 0 to 86400.
    type: float
    default: 0
  expect_model_version:
    description: C(/healthz) must report this C(model_version).
    type: str
  expect_sha256:
    description: C(/healthz) C(model_sha256) must start with this (8 hex digits or more).
    type: str
  golden:
    description:
      - Path on the managed host of the release's C(golden.json) (raw-unit windows, reference embeddings).
      - Its C(normalization_hash) must match the one C(/healthz) reports.
    type: path
  golden_limit:
    description: Replay only the first N golden windows.
    type: int
  replay:
    description:
      - Path on the managed host of a replay file, a capture of real traffic written by
        C(model_tools capture --replay) (raw-unit windows, little-endian float32, 3600 bytes each).
      - The load phases then send its windows in turn, one request each, instead of one synthetic
        window (or the first golden window); the result's C(load_windows) says which.
    type: path
  min_cosine:
    description: Lowest cosine between an answer and its golden reference embedding that passes, from -1 to 1.
    type: float
    default: 0.99
  thresholds:
    description: The targets; the defaults are the deployment guide's (p95 < 50 ms, > 250 req/s, > 99 %, < 512 MB).
    type: dict
    default: {}
    suboptions:
      p95_ms:
        description: The p95 latency (ms, all requests) must be below this.
        type: float
        default: 50
      min_rps:
        description: Closed-loop successful requests per second must be above this.
        type: float
        default: 250
      min_success_rate:
        description: Fraction of successful load requests that must be exceeded.
        type: float
        default: 0.99
      max_memory_mb:
        description: Peak container memory (MiB, page cache excluded, as C(docker stats)) must be below this.
        type: float
        default: 512
  skip_memory:
    description: Do not gate on memory. It is still read and reported when O(container) names the container;
      without O(container) it is not read at all.
    type: bool
    default: false
  container:
    description:
      - Name or id of the sidecar container. Omitted, the container of O(compose_service) is used.
      - Either way it must publish the port of O(url) to be measured.
    type: str
  compose_service:
    description: Compose service label of the sidecar container.
    type: str
    default: edgeinfer-sidecar
  compose_project:
    description: Compose project, when several projects run the service.
    type: str
  docker_socket:
    description: The Docker Engine API socket.
    type: path
    default: /var/run/docker.sock
  fail_on_threshold:
    description:
      - Fail the task when a check fails. The result carries every figure either way, so that the
        deploy can record them.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details:
      - In check mode the options are checked and C(/healthz) is read once; no load is sent (a load is not
        something a dry run should do to a serving edge), so C(passed) stays false and C(check_mode) says why.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - Always C(changed=false).
notes:
  - The load engine is stdlib only; the managed host needs Python 3.11 or newer (C(tests/config.yml)) and nothing else.
  - Latencies are measured on the managed host. Run it on the edge (the default inventory does) so that
    the network between the controller and the edge is not in the figures.
seealso:
  - name: edgeinfer-validate
    description: The same engine from a shell, with JSON, markdown and PNG reports.
    link: https://github.com/edgeinfer/deploy/blob/main/docs/validate.md
"""

EXAMPLES = r"""
- name: Gate the deploy on the deployment guide's targets
  edgeinfer.deploy.edgeinfer_benchmark:
    url: http://127.0.0.1:9000
    golden: /opt/edgeinfer/models/current/golden.json
    compose_project: edgeinfer
    expect_model_version: "{{ edgeinfer_model_version }}"
  register: bench

- name: Record the figures without failing the play
  edgeinfer.deploy.edgeinfer_benchmark:
    duration: 30
    concurrency: 32
    rate: 400
    fail_on_threshold: false
    thresholds:
      p95_ms: 20
  register: bench

- name: Show what missed
  ansible.builtin.debug:
    msg: "{{ bench.failed_checks }} p95={{ bench.latency_p95_ms }} rps={{ bench.throughput_rps }}"
  when: not bench.passed
"""

RETURN = r"""
check_mode:
  description: Set in check mode, where no load is sent.
  returned: in check mode
  type: bool
passed:
  description: Every check passed (or was skipped on purpose).
  returned: always
  type: bool
failed_checks:
  description: Names of the checks that failed, among health, latency, throughput, success, quality, memory.
  returned: always
  type: list
  elements: str
  sample: [latency, memory]
checks:
  description: One entry per check with C(name), C(status) (passed, failed, skipped, not_run), C(value), C(target), C(detail).
  returned: always
  type: list
  elements: dict
latency_p95_ms:
  description: The p95 latency judged by the latency check (open loop unless O(rate=0)).
  returned: when the load ran
  type: float
throughput_rps:
  description: Closed-loop successful requests per second.
  returned: when the load ran
  type: float
success_rate:
  description: Successful fraction of the load requests sent (both phases).
  returned: when the load ran
  type: float
memory_peak_mb:
  description: Peak memory of the sidecar container in MiB, null when it was not measured.
  returned: when the load ran
  type: float
health:
  description: C(ok), C(status), C(problems), C(waited_s) and the C(model) that /healthz reported; in check mode
    C(ok) and C(problems) only.
  returned: always
  type: dict
thresholds:
  description: The thresholds applied, by name (C(p95_ms), C(min_rps), C(min_success_rate), C(max_memory_mb), ...).
  returned: unless check mode
  type: dict
target:
  description: The URL the load was sent to.
  returned: unless check mode
  type: str
warmup:
  description: The warm-up's C(requests) and C(failed) (not judged).
  returned: when the load ran
  type: dict
latency_from:
  description: Which load phase the latency checks read, V(closed) or V(open).
  returned: when the load ran
  type: str
quality:
  description: The /encode probe, and the golden replay (C(windows), C(min_cosine), C(mean_cosine), C(below_min)).
  returned: when health passed
  type: dict
load_windows:
  description: What the load phases sent, C(source) (C(synthetic), C(golden) or C(replay)) and C(windows), the count.
  returned: when health passed
  type: dict
  sample: {source: replay, windows: 1000}
phases:
  description:
    - C(closed) and C(open) load phases, each with C(requests), C(failed), C(failures) by kind,
      C(success_rate), C(rps), C(latency) (C(p50_ms), C(p95_ms), C(p99_ms), C(p999_ms), C(max_ms), C(mean_ms)),
      C(percentile_curve) and a per-second C(timeline); the open phase adds C(uncorrected_latency) and C(unsent).
  returned: when the load ran
  type: dict
resources:
  description: C(measured), C(reason), C(container) (the one measured), C(memory_peak_mb), C(memory_mean_mb), C(cpu_peak_pct),
    C(cpu_mean_pct), C(samples).
  returned: when the load ran
  type: dict
duration:
  description: Seconds the whole benchmark took.
  returned: unless check mode
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.edgeinfer.deploy.plugins.module_utils._benchmark import (
    check_mode_look,
    measure,
    missed_message,
    plan_of,
    read_inputs,
    thresholds_of,
)

THRESHOLDS = dict(
    p95_ms=dict(type="float", default=50.0),
    min_rps=dict(type="float", default=250.0),
    min_success_rate=dict(type="float", default=0.99),
    max_memory_mb=dict(type="float", default=512.0),
)

ARGUMENT_SPEC = dict(
    url=dict(type="str", default="http://127.0.0.1:9000"),
    path=dict(type="str", default="/encode"),
    payload=dict(type="str", choices=["json", "binary"], default="json"),
    concurrency=dict(type="int", default=16),
    duration=dict(type="float", default=10.0),
    warmup=dict(type="float", default=2.0),
    rate=dict(type="float"),
    open_concurrency=dict(type="int", default=64),
    timeout=dict(type="float", default=5.0),
    wait=dict(type="float", default=0.0),
    expect_model_version=dict(type="str"),
    expect_sha256=dict(type="str"),
    golden=dict(type="path"),
    golden_limit=dict(type="int"),
    replay=dict(type="path"),
    min_cosine=dict(type="float", default=0.99),
    thresholds=dict(type="dict", default={}, options=THRESHOLDS, apply_defaults=True),
    skip_memory=dict(type="bool", default=False),
    container=dict(type="str"),
    compose_service=dict(type="str", default="edgeinfer-sidecar"),
    compose_project=dict(type="str"),
    docker_socket=dict(type="path", default="/var/run/docker.sock"),
    fail_on_threshold=dict(type="bool", default=True),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    result: dict = {"changed": False, "passed": False, "failed_checks": [], "checks": []}
    try:
        target, golden, replay = read_inputs(p)
    except ValueError as exc:
        module.fail_json(msg=str(exc), **result)
    thresholds = thresholds_of(p)
    plan = plan_of(p, target, golden, replay)
    if module.check_mode:
        result.update(check_mode_look(plan, p["timeout"]))
        module.exit_json(**result)
    result.update(measure(plan, thresholds, p))
    if not result["passed"] and p["fail_on_threshold"]:
        module.fail_json(msg=missed_message(result, plan), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
