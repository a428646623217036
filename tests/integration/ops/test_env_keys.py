"""docs/sidecar.md lists exactly the keys the deploy writes into the compose env."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def template_keys() -> set[str]:
    text = (REPO / "roles/edgeinfer/templates/sidecar.env.j2").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.M))


def documented_keys() -> set[str]:
    doc = (REPO / "docs/sidecar.md").read_text()
    table = doc[doc.index("<!-- env-keys:start -->") : doc.index("<!-- env-keys:end -->")]
    keys: set[str] = set()
    for row in table.splitlines()[3:]:
        first = row.split("|")[1]
        keys |= set(re.findall(r"`([A-Z][A-Z0-9_]*)`", first))
    return keys


def test_docs_list_exactly_the_keys_of_the_compose_env() -> None:
    written = template_keys()
    assert {"MODEL_VERSION", "MODEL_ACCURACY", "HEF_PATH", "COMPOSE_PROFILES", "EDGEINFER_HAILO_DEVICE"} <= written
    assert documented_keys() == written


def test_the_deployment_guide_names_stay_out_of_the_container() -> None:
    """compose.yaml must not pass them: a new release would then recreate the container
    instead of a hot reload."""
    compose = (REPO / "sidecar/compose.yaml").read_text()
    for key in ("MODEL_VERSION", "MODEL_ACCURACY", "HEF_PATH"):
        assert not re.search(rf"\$\{{{key}\b", compose), key
