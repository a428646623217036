#!/usr/bin/python
# Copyright: EdgeInfer deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: edgeinfer_shadow
short_description: Run a staged release in shadow beside the serving model of an EdgeInfer sidecar, and judge it
version_added: 0.1.0
description:
  - V(start) loads a staged release as the sidecar's shadow (C(POST /admin/shadow)); a share of the live C(/encode)
    and C(/infer) windows is then mirrored to it and never answered from it. The serving model is not touched.
  - V(report) reads the A/B report (C(GET /admin/shadow/report)), waiting with O(min_windows) and O(timeout) until the
    report holds that many paired windows.
  - V(stop) drops the shadow (C(DELETE /admin/shadow)) and returns its final report.
  - For V(report) and V(stop), RV(decision) is the A/B verdict on the report (promote, discard, inconclusive) with
    its reasons, by the thresholds given here; the rule is documented in docs/deploy.md (A/B in shadow).
  - The admin bearer token is read from O(token_file) on the managed host (the edge); it never travels to the
    controller.
author:
  - EdgeInfer deploy team (@edgeinfer)
extends_documentation_fragment:
  - edgeinfer.deploy.attributes
  - edgeinfer.deploy.attributes.actiongroup_sidecar_http
attributes:
  check_mode:
    support: full
    details:
      - V(start) is predicted (C(changed)) and nothing is sent. V(stop) reads the report and predicts C(changed)
        only when a shadow is loaded, as a real run reports it. V(report) only reads, and runs in check mode too
        (without waiting).
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - V(start) always loads the release again (the sidecar replaces a loaded shadow, and its report starts afresh).
      - V(stop) without a shadow loaded changes nothing.
options:
  url:
    description: Base URL of the sidecar, for example C(http://127.0.0.1:9000).
    type: str
    required: true
  action:
    description: What to do.
    type: str
    choices: [start, report, stop]
    default: report
  token_file:
    description: File on the managed host holding the sidecar's admin token (the deploy writes C(<root>/compose/admin_token)).
    type: path
    required: true
  release:
    description:
      - The staged release to run in shadow, as the sidecar sees it, relative to C(EDGEINFER_SHADOW_ROOT)
        (C(/models) in the container), for example C(releases/v73-1a2b3c4d).
      - Required with O(action=start).
    type: str
  onnx_file:
    description: ONNX file of the shadow release to serve.
    type: str
    choices: [auto, model.onnx, model_batch.onnx, model_int8.onnx]
    default: auto
  backend:
    description: Backend of the shadow.
    type: str
    choices: [onnxruntime, auto, hailo]
    default: onnxruntime
  per_window:
    description:
      - With O(action=report) or O(action=stop), ask the sidecar for the per-window agreement series too
        (C(per_window) in RV(report)), as the A/B records plot it. It holds each window's kNN Jaccard, and its
        cosine for the same network, oldest first, binned to at most 500 points.
    type: bool
    default: false
  min_windows:
    description:
      - Paired windows the report must hold for a verdict other than V(inconclusive).
      - With O(action=report), also the count to wait for (up to O(timeout) seconds); 0 reads once.
    type: int
    default: 0
  timeout:
    description: Seconds O(action=report) waits for O(min_windows) paired windows; the timeout of each request besides.
    type: float
    default: 60
  interval:
    description: Seconds between two reads of the report while waiting.
    type: float
    default: 2
  min_cka:
    description: Lowest linear CKA of the serving and shadow embeddings for V(promote).
    type: float
    default: 0.9
  min_knn_jaccard:
    description: Lowest mean kNN Jaccard overlap for V(promote).
    type: float
    default: 0.5
  max_p95_factor:
    description: The shadow's p95 inference time may be at most this many times the serving model's for V(promote).
    type: float
    default: 2.0
  max_error_windows:
    description: Windows the shadow may fail on; more is a V(discard), whatever the count of pairs.
    type: int
    default: 0
  min_cosine:
    description:
      - Lowest mean per-window cosine for V(promote), applied only when both releases are the same network
        (the same C(model.onnx), as after a re-quantization or a recompile), where the cosine means something.
      - Unset, the cosine is not judged.
    type: float
seealso:
  - module: edgeinfer.deploy.edgeinfer_probe
"""

EXAMPLES = r"""
- name: Start the candidate in shadow
  edgeinfer.deploy.edgeinfer_shadow:
    url: http://127.0.0.1:9000
    action: start
    release: releases/v73-1a2b3c4d
    token_file: /opt/edgeinfer/compose/admin_token

- name: Wait for 500 paired windows, at most ten minutes
  edgeinfer.deploy.edgeinfer_shadow:
    url: http://127.0.0.1:9000
    action: report
    token_file: /opt/edgeinfer/compose/admin_token
    min_windows: 500
    timeout: 600

- name: Drop the shadow and judge its final report
  edgeinfer.deploy.edgeinfer_shadow:
    url: http://127.0.0.1:9000
    action: stop
    token_file: /opt/edgeinfer/compose/admin_token
    min_windows: 500
    min_cka: 0.9
    min_knn_jaccard: 0.5
  register: ab

- name: Say what it decided
  ansible.builtin.debug:
    msg: "{{ ab.decision.verdict }}: {{ ab.decision.reasons | join('; ') }}"
"""

RETURN = r"""
action:
  description: The action run, O(action).
  returned: always
  type: str
loaded:
  description: The sidecar's answer to the load (C(shadow), C(replaced), C(serving)).
  returned: O(action=start), not in check mode
  type: dict
report:
  description:
    - The A/B report as the sidecar gives it (docs/sidecar.md, The shadow), the final one for O(action=stop).
    - Null when no shadow is loaded (O(action=report)) or none was (O(action=stop)).
    - In check mode, O(action=stop) returns the report as it stands, and drops nothing.
  returned: O(action=report) or O(action=stop)
  type: dict
reached:
  description: Whether the report held O(min_windows) paired windows before O(timeout).
  returned: O(action=report)
  type: bool
waited:
  description: Seconds spent waiting for the windows.
  returned: O(action=report)
  type: float
decision:
  description: The A/B verdict on RV(report).
  returned: O(action=report) or O(action=stop)
  type: dict
  contains:
    verdict:
      description: V(promote), V(discard) or V(inconclusive).
      type: str
    reasons:
      description: Every reason for the verdict (for V(promote), the thresholds met).
      type: list
      elements: str
    thresholds:
      description: The thresholds applied.
      type: dict
    figures:
      description: The report's figures judged (windows, error_windows, linear_cka, knn_jaccard, cosine_mean, p95s).
      type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.edgeinfer.deploy.plugins.module_utils._shadow import (
    ShadowError,
    decide,
    read_token,
    report,
    start,
    stop,
    wait_report,
)


class ShadowRun:
    """One action of the module on the sidecar at ``url``."""

    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.url = self.p["url"].rstrip("/")
        self.result = {"changed": False, "action": self.p["action"]}

    def fail(self, msg, **extra):
        self.module.fail_json(msg=msg, **self.result, **extra)

    def check(self):
        p = self.p
        if not self.url.startswith(("http://", "https://")):
            self.fail(f"url={p['url']!r}: expected http://host:port")
        if p["min_windows"] < 0:
            self.fail(f"min_windows={p['min_windows']}: a count of paired windows, 0 or more")
        for name in ("min_cka", "min_knn_jaccard"):
            if not 0.0 <= p[name] <= 1.0:
                self.fail(f"{name}={p[name]}: a similarity in [0, 1]; 0.9 and 0.5 are the defaults")
        if p["min_cosine"] is not None and not -1.0 <= p["min_cosine"] <= 1.0:
            self.fail(f"min_cosine={p['min_cosine']}: a cosine similarity lies in [-1, 1]")
        if not p["timeout"] > 0:
            self.fail(f"timeout={p['timeout']}: a number of seconds above 0; 60 is the default")
        if not p["interval"] > 0:
            self.fail(f"interval={p['interval']}: a number of seconds above 0 between two reads; 2 is the default")
        if p["max_p95_factor"] <= 0:
            self.fail(f"max_p95_factor={p['max_p95_factor']}: a factor above 0; 2 lets the shadow be twice as slow")
        if p["action"] == "start" and p["release"].startswith("/"):
            self.fail(
                f"release={p['release']!r}: name it as the sidecar sees it, relative to EDGEINFER_SHADOW_ROOT "
                "(/models in the container), e.g. releases/<id>"
            )

    def decide(self, body):
        p = self.p
        return decide(
            body,
            p["min_windows"],
            p["min_cka"],
            p["min_knn_jaccard"],
            p["max_p95_factor"],
            p["max_error_windows"],
            p["min_cosine"],
        )

    def run(self):
        self.check()
        p = self.p
        action = p["action"]
        if self.module.check_mode and action == "start":
            self.result["changed"] = True
            self.module.exit_json(**self.result)
        try:
            token = read_token(p["token_file"])
            if self.module.check_mode and action == "stop":  # a stop changes something only with a shadow loaded
                body = report(self.url, token, p["timeout"], p["per_window"])
                self.result.update(changed=body is not None, report=body, decision=self.decide(body))
                self.module.exit_json(**self.result)
            if action == "start":
                self.result["loaded"] = start(self.url, token, p["release"], p["onnx_file"], p["backend"], p["timeout"])
                self.result["changed"] = True
            elif action == "report":
                wait = 0.0 if self.module.check_mode else p["timeout"]
                body, reached, waited = wait_report(
                    self.url,
                    token,
                    p["min_windows"],
                    wait,
                    p["interval"],
                    request_timeout=p["timeout"],
                    per_window=p["per_window"],
                )
                self.result.update(report=body, reached=reached, waited=waited, decision=self.decide(body))
            else:
                body = stop(self.url, token, p["timeout"], p["per_window"])
                self.result.update(changed=body is not None, report=body, decision=self.decide(body))
        except ShadowError as exc:
            self.fail(str(exc), status=exc.status, answer=exc.body)
        self.module.exit_json(**self.result)


def main():
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "action": {"type": "str", "choices": ["start", "report", "stop"], "default": "report"},
            "token_file": {"type": "path", "required": True, "no_log": False},
            "release": {"type": "str"},
            "onnx_file": {
                "type": "str",
                "choices": ["auto", "model.onnx", "model_batch.onnx", "model_int8.onnx"],
                "default": "auto",
            },
            "backend": {"type": "str", "choices": ["onnxruntime", "auto", "hailo"], "default": "onnxruntime"},
            "per_window": {"type": "bool", "default": False},
            "min_windows": {"type": "int", "default": 0},
            "timeout": {"type": "float", "default": 60},
            "interval": {"type": "float", "default": 2},
            "min_cka": {"type": "float", "default": 0.9},
            "min_knn_jaccard": {"type": "float", "default": 0.5},
            "max_p95_factor": {"type": "float", "default": 2.0},
            "max_error_windows": {"type": "int", "default": 0},
            "min_cosine": {"type": "float"},
        },
        required_if=[("action", "start", ["release"])],
        supports_check_mode=True,
    )
    ShadowRun(module).run()


if __name__ == "__main__":
    main()
