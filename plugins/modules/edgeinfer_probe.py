#!/usr/bin/python
# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: edgeinfer_probe
short_description: Wait for an EdgeInfer sidecar to be healthy and check its outputs against the golden set
version_added: 0.1.0
description:
  - Polls C(/healthz) until it answers 200 for the expected model (version, sha256, embedding stamp), or O(timeout) passes.
  - Then replays the release's golden set through C(/encode) and compares each embedding with the
    PyTorch reference by cosine similarity; fails when the minimum is below the floor, which is O(min_cosine) when
    given, else the quality floor of the backend C(/healthz) says serves (fp32 ONNX 0.999, INT8 ONNX and Hailo-8 0.98,
    one table, C(QUALITY_FLOORS) in the release contract), so a real INT8 result is judged by the INT8 floor.
  - With O(expect_backend), a sidecar that serves on another backend (a Hailo edge that fell back to the CPU)
    fails the gate, naming the reason the sidecar gives.
  - A gate of outputs, not of process liveness; a sidecar that is up but answers wrong numbers fails here.
author:
  - EdgeInfer deploy team (@edgeinfer)
extends_documentation_fragment:
  - edgeinfer.deploy.attributes
  - edgeinfer.deploy.attributes.actiongroup_sidecar_http
attributes:
  check_mode:
    support: full
    details:
      - The probe only reads; it runs in check mode too and never reports C(changed), except for the reload
        O(reload_token_file) asks for, which check mode predicts and does not send. Then the gates would judge
        the model that reload loads, so check mode judges nothing and returns RV(passed=false) with
        RV(check_mode=true).
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - Without O(reload_token_file) it only reads. With it, every run sends a hot reload and reports C(changed).
options:
  url:
    description: Base URL of the sidecar, for example C(http://127.0.0.1:9000).
    type: str
    required: true
  timeout:
    description: Seconds to wait for a healthy answer.
    type: float
    default: 60
  expect_version:
    description: The model version C(/healthz) must report.
    type: str
  expect_sha256:
    description: The model sha256 C(/healthz) must report; a prefix of at least 8 hex digits is compared as a prefix.
    type: str
  expect_stamp:
    description: The embedding stamp (C(<model_id>/<dim>/<hash12>)) C(/healthz) must report; waited for within
      O(timeout) as the version and sha256 are.
    type: str
  golden:
    description: Path on the managed host of the release's C(golden.json). Without it, only health is checked.
    type: path
  golden_limit:
    description: Replay only the first N windows of the golden set (0 = all).
    type: int
    default: 0
  min_cosine:
    description:
      - The lowest cosine similarity to the reference any golden window may have.
      - Without it, the quality floor of the backend and file C(/healthz) reports (see the description).
    type: float
  expect_backend:
    description:
      - The backend C(/healthz) must report (V(hailo) or V(onnxruntime)); without it, any.
    type: str
    choices: [hailo, onnxruntime]
  reload_token_file:
    description:
      - First ask the sidecar to hot-reload C(models/current) (C(POST /admin/reload)) with the bearer token read
        from this file on the edge, so the token never travels to the controller; then gate the model it serves.
      - The sidecar loads the release, runs its golden self-check and swaps atomically; a release that fails to
        load or to pass its self-check is refused (the task fails, naming the sidecar's answer) and the old
        model keeps serving.
      - In check mode nothing is sent, and C(changed) says the reload would happen.
    type: path
  fail_on_gate:
    description: Fail the task when a gate misses; with V(false) the figures are returned and C(passed) says.
    type: bool
    default: true
seealso:
  - module: edgeinfer.deploy.edgeinfer_release
"""

EXAMPLES = r"""
- name: Gate the new release
  edgeinfer.deploy.edgeinfer_probe:
    url: http://127.0.0.1:9000
    expect_version: v72pct
    expect_sha256: "{{ staged.digest }}"
    golden: /opt/edgeinfer/models/current/golden.json
  register: gate

- name: Gate a Hailo edge, which must not serve on the CPU
  edgeinfer.deploy.edgeinfer_probe:
    url: http://127.0.0.1:9000
    golden: /opt/edgeinfer/models/current/golden.json
    expect_backend: hailo
"""

RETURN = r"""
reload:
  description: The sidecar's answer to the hot reload (HTTP C(status) and C(body)).
  returned: when O(reload_token_file) is given, but in check mode
  type: dict
check_mode:
  description: True when check mode predicted a hot reload and judged nothing (RV(passed) is then false).
  returned: in check mode with O(reload_token_file)
  type: bool
passed:
  description: Whether health and, when given, the golden gate passed.
  returned: always
  type: bool
reason:
  description: Why the probe failed, or C(healthy).
  returned: unless the sidecar refused the reload (then only RV(reload) and RV(passed) are returned)
  type: str
healthy:
  description: Whether C(/healthz) answered 200 for the expected model within the timeout.
  returned: unless the sidecar refused the reload (then only RV(reload) and RV(passed) are returned)
  type: bool
duration:
  description: Seconds until C(/healthz) was healthy, or until the timeout.
  returned: unless the sidecar refused the reload (then only RV(reload) and RV(passed) are returned)
  type: float
health:
  description: The last C(/healthz) body.
  returned: unless the sidecar refused the reload (then only RV(reload) and RV(passed) are returned)
  type: dict
floor:
  description: The golden floor applied, and where it came from.
  returned: when O(golden) is given and the sidecar was healthy
  type: dict
  contains:
    min_cosine:
      description: The floor.
      type: float
    source:
      description: V(min_cosine) when the option set it, else the serving precision (V(fp32), V(int8), V(hailo)).
      type: str
golden:
  description: The golden replay figures.
  returned: when O(golden) is given and the sidecar was healthy
  type: dict
  contains:
    count:
      description: Windows replayed.
      type: int
    min_cosine:
      description: The lowest cosine against the reference.
      type: float
    mean_cosine:
      description: The mean cosine.
      type: float
    max_norm_drift:
      description: The largest relative difference of embedding norms.
      type: float
    below_min:
      description: Windows whose cosine is below the floor applied (RV(floor.min_cosine)).
      type: int
    failed:
      description: Windows that got no usable answer (counted as cosine -1).
      type: int
    failures:
      description: What went wrong with the windows that failed or missed the floor, one line each.
      type: list
      elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.edgeinfer.deploy.plugins.module_utils._contract import ContractError
from ansible_collections.edgeinfer.deploy.plugins.module_utils._probe import (
    gates,
    health_result,
    hot_reload,
    load_golden,
    option_problem,
    reload_refusal,
)


def main():
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "timeout": {"type": "float", "default": 60},
            "expect_version": {"type": "str"},
            "expect_sha256": {"type": "str"},
            "expect_stamp": {"type": "str"},
            "golden": {"type": "path"},
            "golden_limit": {"type": "int", "default": 0},
            "min_cosine": {"type": "float"},
            "expect_backend": {"type": "str", "choices": ["hailo", "onnxruntime"]},
            "reload_token_file": {"type": "path"},
            "fail_on_gate": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    base = p["url"].rstrip("/")
    problem = option_problem(p)
    if problem:
        module.fail_json(msg=problem)
    golden = None
    if p["golden"]:
        try:
            golden = load_golden(p["golden"])
        except ContractError as exc:
            module.fail_json(msg=f"golden={p['golden']}: {exc}", field=exc.field)

    reloaded = None
    if p["reload_token_file"]:
        if module.check_mode:
            module.exit_json(
                changed=True,
                passed=False,
                healthy=False,
                check_mode=True,
                reason="check mode: the hot reload is predicted, not sent, so no gate judged the model it would load",
                duration=0.0,
                health={},
            )
        ok, status, answer = hot_reload(base, p["reload_token_file"], p["timeout"])
        reloaded = {"status": status, "body": answer}
        if not ok:
            module.fail_json(msg=reload_refusal(status, answer), reload=reloaded, passed=False)

    result = health_result(base, p, reloaded)
    try:
        result["passed"] = gates(base, p, golden, result)
    except ContractError as exc:
        module.fail_json(msg=f"/healthz: {exc}; set min_cosine to gate this sidecar", **result)
    if not result["passed"] and p["fail_on_gate"]:
        module.fail_json(msg=result["reason"], **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
