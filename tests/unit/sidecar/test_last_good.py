"""The last good model survives a restart: a sidecar that starts on a ``current`` it refuses
serves ``last_good`` (the last release that passed its gates on the edge), and says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.config import Settings
from testbed.sidecar import broken_onnx, make_release, perturbed_onnx, point_current, rewrite_manifest


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    return None


def _refused(models: Path, origin_dir: Path, origin_onnx: Path, tmp_path: Path, breakage: str) -> Path:
    """A release the sidecar refuses: its golden set is another model's, or its model does not load."""
    golden_from = perturbed_onnx(origin_onnx, tmp_path / "other.onnx", scale=-1.0) if breakage == "self-check" else None
    bad = make_release(
        models / "releases" / "bad",
        origin_onnx,
        origin_dir / "model_config.json",
        version="bad",
        golden_from=golden_from,
    )
    if breakage == "load":
        broken_onnx(bad / "model_batch.onnx")
        rewrite_manifest(bad)
    return bad


@pytest.mark.parametrize(
    ("breakage", "reason"), [("self-check", "self-check failed"), ("load", "ONNX Runtime cannot load it")]
)
def test_a_refused_current_at_start_serves_last_good_until_a_good_current_reloads(
    sidecar, tmp_path, origin_dir, origin_onnx, breakage, reason
):
    models = tmp_path / "models"
    good = make_release(models / "releases" / "v72pct", origin_onnx, origin_dir / "model_config.json")
    point_current(models, good, "last_good")
    point_current(models, _refused(models, origin_dir, origin_onnx, tmp_path, breakage))
    s = sidecar(models / "current")  # EDGEINFER_LAST_GOOD_DIR left to its default: models/last_good

    h = s.get("/healthz")
    assert h.status_code == 200, h.text
    assert h.json()["serving"] == "last_good"
    assert reason in h.json()["fallback_reason"]
    assert h.json()["model_version"] == "v72pct" and h.json()["model_dir"] == str(good.resolve())
    assert h.json()["last_reload"]["outcome"] == "failed" and reason in h.json()["last_reload"]["reason"]
    assert s.post("/encode", json={"imu_window": [[0.5] * 9] * 100}).json()["model_version"] == "v72pct"
    m = s.get("/metrics").text
    assert _metric(m, "edgeinfer_serving_last_good") == 1 and _metric(m, "edgeinfer_model_loaded") == 1
    assert "serving the last good release v72pct" in s.output()

    # A reload of a current that is refused again: last_good keeps serving, with the new reason.
    nothing = models / "releases" / "no-manifest"
    make_release(nothing, origin_onnx, origin_dir / "model_config.json", version="x", manifest=False, batch=False)
    point_current(models, nothing)
    assert s.reload().status_code == 422
    h = s.get("/healthz").json()
    assert h["serving"] == "last_good" and "has no manifest.json" in h["fallback_reason"]

    # A reload of a current that passes: it serves, and the fallback is over.
    v73 = make_release(
        models / "releases" / "v73",
        perturbed_onnx(origin_onnx, tmp_path / "v73.onnx"),
        origin_dir / "model_config.json",
        version="v73",
    )
    point_current(models, v73)
    r = s.reload()
    assert r.status_code == 200, r.text
    h = s.get("/healthz").json()
    assert (h["serving"], h["fallback_reason"], h["model_version"]) == ("current", None, "v73")
    assert _metric(s.get("/metrics").text, "edgeinfer_serving_last_good") == 0


def test_a_good_current_serves_as_current(sidecar, models):
    s = sidecar(models / "current")
    h = s.get("/healthz").json()
    assert (h["serving"], h["fallback_reason"]) == ("current", None)
    assert _metric(s.get("/metrics").text, "edgeinfer_serving_last_good") == 0


def test_when_last_good_is_refused_too_nothing_serves(sidecar, tmp_path, origin_dir, origin_onnx):
    models = tmp_path / "models"
    bad = _refused(models, origin_dir, origin_onnx, tmp_path, "self-check")
    also_bad = make_release(
        models / "releases" / "v71", origin_onnx, origin_dir / "model_config.json", version="v71", golden_windows=0
    )
    point_current(models, bad)
    point_current(models, also_bad, "last_good")
    s = sidecar(models / "current")
    h = s.get("/healthz")
    assert h.status_code == 503, h.text
    assert "self-check failed" in h.json()["reason"]
    assert "last good release was refused too: golden.json is missing" in h.json()["reason"]
    r = s.post("/encode", json={"imu_window": [[0.5] * 9] * 100})
    assert r.status_code == 503 and r.json()["error"] == "no_model"
    m = s.get("/metrics").text
    assert _metric(m, "edgeinfer_serving_last_good") == 0 and _metric(m, "edgeinfer_model_loaded") == 0


def test_no_last_good_beside_current_is_a_503_as_before(sidecar, tmp_path, origin_dir, origin_onnx):
    models = tmp_path / "models"
    point_current(models, _refused(models, origin_dir, origin_onnx, tmp_path, "self-check"))
    s = sidecar(models / "current")
    h = s.get("/healthz")
    assert h.status_code == 503 and "self-check failed" in h.json()["reason"]
    assert f"no last good release: EDGEINFER_LAST_GOOD_DIR={models / 'last_good'} does not exist" in h.json()["reason"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "/models/last_good"),
        ({"EDGEINFER_MODEL_DIR": "/opt/edgeinfer/models/current"}, "/opt/edgeinfer/models/last_good"),
        ({"EDGEINFER_MODEL_DIR": "/srv/release"}, None),  # not a current link: no default
        ({"EDGEINFER_MODEL_DIR": "/srv/release", "EDGEINFER_LAST_GOOD_DIR": "/srv/good"}, "/srv/good"),
    ],
)
def test_last_good_dir_defaults_to_the_sibling_of_a_current_link(env, expected):
    got = Settings.from_env(env).last_good_dir
    assert (str(got) if got else None) == expected
