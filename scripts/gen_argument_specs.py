"""Regenerate roles/edgeinfer/meta/argument_specs.yml from the comments in its defaults/main.yml.

Each default's description is the comment block right above it; a templated default is shown
as text (its value is only known at run time). The defaults and their comments are the one home
of the role's options: run it after changing a default (tests/integration/ops/test_argument_specs.py fails
while the committed file differs from what it writes):

    .venv/bin/python scripts/gen_argument_specs.py && git diff roles/edgeinfer/meta/argument_specs.yml
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[1] / "roles" / "edgeinfer"

# What the comments cannot say: types wider than the default's, and the allowed values.
RAW = ("edgeinfer_sidecar_port", "edgeinfer_transfer_direct_port", "edgeinfer_hailo_gid", "edgeinfer_sidecar_min_cosine", "edgeinfer_golden_min_cosine",
       "edgeinfer_healthcheck_interval", "edgeinfer_ab_edges", "edgeinfer_ab_min_cosine")  # fmt: skip
FLOAT = ("edgeinfer_benchmark_warmup", "edgeinfer_benchmark_p95_ms", "edgeinfer_benchmark_min_rps",
         "edgeinfer_benchmark_max_memory_mb", "edgeinfer_benchmark_duration",
         "edgeinfer_benchmark_min_success_rate", "edgeinfer_health_timeout")  # fmt: skip
CHOICES = {
    "edgeinfer_backend": ["auto", "onnxruntime", "hailo"],
    "edgeinfer_image_delivery": ["build", "load", "pull", "present"],
    "edgeinfer_transfer_mode": ["controller", "direct"],
    "edgeinfer_onnx_file": ["auto", "model.onnx", "model_batch.onnx", "model_int8.onnx"],
    "edgeinfer_ab_onnx_file": ["auto", "model.onnx", "model_batch.onnx", "model_int8.onnx"],
    "edgeinfer_sched_policy": ["batch", "other"],
}
DESCRIPTION = [
    "Preflight, deploy lock, transfer, staging with sha256 checks and a signature check against the inventory's "
    "trusted keys, image delivery, compose env, "
    "atomic switch of models/current, hot reload or restart, gates (health, golden set, benchmark), then commit, "
    "or roll back and fail the host; a record on the edge and on the controller.",
    "The tasks files rollback_play.yml, validate_play.yml and ab_play.yml serve playbooks/rollback.yml, "
    "playbooks/validate.yml and playbooks/ab.yml.",
]


def render() -> str:
    """The text of roles/edgeinfer/meta/argument_specs.yml, from the role's defaults."""
    src = ROLE / "defaults" / "main.yml"
    values = yaml.safe_load(src.read_text())
    docs: dict[str, str] = {}
    block: list[str] = []
    for line in src.read_text().splitlines():
        if line.startswith("#"):
            block.append(line.lstrip("# ").rstrip())
        elif re.match(r"^[a-z0-9_]+:", line):
            docs[line.split(":")[0]] = " ".join(block)
            block = []
        else:
            block = []
    types = {bool: "bool", int: "int", float: "float", list: "list", dict: "dict"}
    options = {}
    for name, value in values.items():
        if not docs.get(name):
            raise SystemExit(f"{src}: {name} has no comment above it: say what it is for")
        opt: dict[str, object] = {"type": types.get(type(value), "str"), "description": docs[name]}
        if isinstance(value, str) and "{{" in value:
            opt["description"] = [docs[name], f"Default: C({value})."]
        else:
            opt["default"] = value
        if isinstance(value, list):
            opt["elements"] = "str"
        options[name] = opt
    for name in RAW:
        options[name]["type"] = "raw"
        options[name].pop("elements", None)
    for name, choices in CHOICES.items():
        options[name]["choices"] = choices
    options["edgeinfer_release_source"]["type"] = "dict"
    for name in FLOAT:
        options[name]["type"] = "float"
        if "default" in options[name]:
            options[name]["default"] = float(options[name]["default"])
    spec = {
        "argument_specs": {
            "main": {
                "short_description": "Deploy a verified model release to an EdgeInfer edge, with gates and automatic rollback",
                "description": DESCRIPTION,
                "options": options,
            }
        }
    }

    class Dumper(yaml.SafeDumper):
        def increase_indent(self, flow: bool = False, indentless: bool = False):  # noqa: ARG002
            return super().increase_indent(flow, False)

    return "---\n" + yaml.dump(spec, Dumper=Dumper, sort_keys=False, width=110)


def main() -> None:
    (ROLE / "meta" / "argument_specs.yml").write_text(render())


if __name__ == "__main__":
    main()
