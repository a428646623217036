"""Prometheus rules, their promtool unit tests, the generated scrape config and the Grafana
dashboard, checked against a live sidecar's /metrics and a real Prometheus server."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from testbed.ansible_run import run_playbook

from .conftest import MONITORING, REPO, scrape, send_traffic
from .promql import base_name, metric_names

RULES = MONITORING / "rules" / "edgeinfer.rules.yml"
RULE_TESTS = MONITORING / "tests" / "edgeinfer.test.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "edgeinfer-fleet.json"
COMPOSE_MONITORING = MONITORING / "compose.monitoring.yaml"
PARAMETERS = {"edgeinfer:target_p95_seconds", "edgeinfer:max_error_ratio", "edgeinfer:memory_warn_ratio"}
# Series that are not the sidecar's, each for a stated reason:
PROMETHEUS_OWN = {"up"}  # written by Prometheus for every target
CADVISOR = {"container_memory_working_set_bytes", "container_spec_memory_limit_bytes"}  # memory (needs cAdvisor)


def _rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def _alerts() -> dict[str, dict]:
    return {r["alert"]: r for r in _rules() if "alert" in r}


def _recorded() -> dict[str, str]:
    return {r["record"]: r["expr"] for r in _rules() if "record" in r}


@pytest.fixture(scope="module")
def exported(live_sidecar) -> dict[str, set[str]]:
    """Sample name -> label names, from the live sidecar's /metrics."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(scrape(live_sidecar)):
        for s in family.samples:
            out.setdefault(s.name, set()).update(s.labels)
    return out


def _unexported(names: set[str], exported: dict[str, set[str]], allowed: set[str]) -> set[str]:
    """Names that are neither a live sample name nor a recording rule (resolved) nor allowed."""
    recorded = _recorded()
    missing = set()
    for n in names:
        if n in exported or n in allowed or n in PARAMETERS:
            continue
        if n in recorded:
            missing |= _unexported(metric_names(recorded[n]), exported, allowed)
            continue
        missing.add(n)
    return missing


# -- rules --------------------------------------------------------------------


def test_promtool_check_rules(promtool: str):
    r = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in r.stdout


def test_promtool_test_rules(promtool: str):
    r = subprocess.run([promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_the_issue_s_alerts_are_all_there():
    assert set(_alerts()) == {
        "EdgeInferLatencyP95High",
        "EdgeInferErrorRateHigh",
        "EdgeInferSidecarDown",
        "EdgeInferNoModelServing",
        "EdgeInferServingLastGood",
        "EdgeInferReloadFailed",
        "EdgeInferNonFiniteOutputs",
        "EdgeInferHailoFallback",
        "EdgeInferMemoryNearLimit",
        "EdgeInferCadvisorDown",
        "EdgeInferModelVersionDrift",
    }
    assert _alerts()["EdgeInferLatencyP95High"]["for"] == "5m"


def test_every_alert_has_a_firing_case_and_a_quiet_case():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    for alert in _alerts():
        fires = quiet = False
        for t in tests:
            cases = [c for c in t.get("alert_rule_test", []) if c["alertname"] == alert]
            if not cases:
                continue
            hosts = {m.group(1) for s in t["input_series"] if (m := re.search(r'host="([^"]+)"', s["series"]))}
            for c in cases:
                fired_hosts = {a["exp_labels"]["host"] for a in c["exp_alerts"]}
                fires |= bool(fired_hosts)
                # quiet: an evaluation with no alert, or a host with input series that must not fire
                quiet |= not fired_hosts or bool(hosts - fired_hosts)
        assert fires, f"{alert}: no unit test where it fires"
        assert quiet, f"{alert}: no unit test where it must stay quiet"


@pytest.mark.parametrize("alert", sorted(_alerts()))
def test_the_unit_tests_catch_an_alert_that_never_fires(alert: str, promtool: str, tmp_path: Path):
    """Break one alert (its expression selects nothing): promtool test rules must fail."""
    doc = yaml.safe_load(RULES.read_text())
    for g in doc["groups"]:
        for r in g["rules"]:
            if r.get("alert") == alert:
                r["expr"] = "vector(1) == 0"
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "edgeinfer.rules.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (tmp_path / "tests").mkdir()
    shutil.copy(RULE_TESTS, tmp_path / "tests" / "edgeinfer.test.yml")
    r = subprocess.run(
        [promtool, "test", "rules", "tests/edgeinfer.test.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert r.returncode != 0, f"breaking {alert} went unnoticed:\n{r.stdout}"
    assert alert in r.stdout + r.stderr


def test_rules_and_their_unit_tests_use_only_exported_metrics(exported):
    rule_names = set().union(*(metric_names(r["expr"]) for r in _rules()))
    assert _unexported(rule_names, exported, PROMETHEUS_OWN | CADVISOR) == set()
    series = [s["series"] for t in yaml.safe_load(RULE_TESTS.read_text())["tests"] for s in t["input_series"]]
    test_names = {s.split("{", 1)[0] for s in series}
    assert _unexported(test_names, exported, PROMETHEUS_OWN | CADVISOR) == set()


def test_the_checker_would_catch_a_misspelt_metric(exported):
    assert _unexported({"edgeinfer_request_latency_seconds_bucket"}, exported, PROMETHEUS_OWN) == {
        "edgeinfer_request_latency_seconds_bucket"
    }


def test_rule_labels_exist_on_the_sidecar_series(exported):
    assert {"route", "status"} <= exported["edgeinfer_requests_total"]
    assert "route" in exported["edgeinfer_request_duration_seconds_bucket"]
    assert {"model_version", "backend", "model_sha256", "embedding_stamp"} <= exported["edgeinfer_model_info"]
    assert "backend" in exported["edgeinfer_inference_duration_seconds_bucket"]


# -- Grafana -----------------------------------------------------------------


def _panels() -> list[dict]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def _dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in _panels() for t in p["targets"]]
    for v in doc["templating"]["list"]:
        if v["type"] == "query":
            exprs.append(re.sub(r"^label_values\(([^,]+),.*\)$", r"\1", v["query"]["query"]))
    return exprs


def test_dashboard_queries_only_metrics_the_sidecar_exports(exported):
    names = set().union(*(metric_names(e) for e in _dashboard_exprs()))
    assert names, "no metric found in the dashboard"
    assert _unexported(names, exported, PROMETHEUS_OWN) == set()
    # every family the sidecar registers is on the dashboard
    families = {base_name(n) for n in exported}
    assert families <= {base_name(n) for n in names}, families - {base_name(n) for n in names}


def test_dashboard_has_the_panels_operators_need():
    doc = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    by_title = {p["title"]: p for p in _panels()}
    latency = " ".join(t["expr"] for t in by_title["Request latency percentiles (/encode, /infer)"]["targets"])
    assert all(f"histogram_quantile({q}" in latency for q in ("0.50", "0.95", "0.99"))
    assert "rate(edgeinfer_requests_total" in by_title["Throughput"]["targets"][0]["expr"]
    assert 'status!~"2.."' in by_title["Errors"]["targets"][0]["expr"]
    assert "edgeinfer_inference_duration_seconds" in by_title["Inference time per backend call"]["targets"][0]["expr"]
    assert "edgeinfer_batch_size" in by_title["Batch size"]["targets"][0]["expr"]
    table = by_title["Model version and backend per host"]
    assert table["type"] == "table" and table["targets"][0]["format"] == "table"
    assert all(w in table["targets"][0]["expr"] for w in ("host", "model_version", "backend", "intended_version"))
    for p in _panels():
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
    provisioned = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())
    var = next(v for v in doc["templating"]["list"] if v["name"] == "datasource")
    assert var["current"]["value"] == provisioned["datasources"][0]["uid"]


# -- generated scrape config --------------------------------------------------


def _inventory(tmp_path: Path, edges: dict[str, dict]) -> Path:
    inv = {
        "all": {
            "children": {"gpusrv": {"hosts": {"gpusrv-x": {"ansible_connection": "local"}}}, "edges": {"hosts": edges}}
        }
    }
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inv))
    return path


def _generate(tmp_path: Path, inventory: Path, **extra: object) -> Path:
    out = tmp_path / "monitoring-out"
    run = run_playbook(
        REPO / "playbooks" / "monitoring.yml", inventory, {"edgeinfer_monitoring_out": str(out), **extra}
    )
    assert run.rc == 0, run.explain()
    return out


def test_scrape_config_is_generated_from_the_inventory(tmp_path: Path, promtool: str):
    inv = _inventory(
        tmp_path,
        {
            "pi-a": {
                "ansible_host": "100.64.0.11",
                "edgeinfer_sidecar_bind": "0.0.0.0",
                "edgeinfer_sidecar_port": 9000,
            },
            "pi-b": {
                "ansible_host": "100.64.0.12",
                "edgeinfer_sidecar_port": 9100,
                "edgeinfer_monitoring_address": "pi-b.tailnet.example",
                "edgeinfer_benchmark_p95_ms": 20,
                "edgeinfer_benchmark_min_success_rate": 0.995,
                "edgeinfer_monitoring_cadvisor_port": 0,
                "edgeinfer_intended_model_version": "v57pct",
            },
            "pi-c": {"ansible_host": "100.64.0.13"},  # sidecar on loopback: Prometheus beside it
        },
    )
    out = _generate(tmp_path, inv, edgeinfer_build_model_version="v72pct")
    cfg = yaml.safe_load((out / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    targets = {sc["labels"]["host"]: (sc["targets"], sc["labels"]) for sc in jobs["edgeinfer"]["static_configs"]}
    assert targets["pi-a"] == (["100.64.0.11:9000"], {"host": "pi-a", "intended_version": "v72pct"})
    assert targets["pi-b"] == (["pi-b.tailnet.example:9100"], {"host": "pi-b", "intended_version": "v57pct"})
    assert targets["pi-c"][0] == ["127.0.0.1:9000"]
    assert [sc["labels"]["host"] for sc in jobs["cadvisor"]["static_configs"]] == ["pi-a", "pi-c"]
    params = yaml.safe_load((out / "rules" / "parameters.rules.yml").read_text())["groups"][0]["rules"]
    by = {(r["record"], r["labels"]["host"]): r["expr"] for r in params}
    assert by[("edgeinfer:target_p95_seconds", "pi-a")] == "vector(0.05)"
    assert by[("edgeinfer:target_p95_seconds", "pi-b")] == "vector(0.02)"
    assert by[("edgeinfer:max_error_ratio", "pi-b")] == "vector(0.005)"
    assert by[("edgeinfer:memory_warn_ratio", "pi-c")] == "vector(0.9)"
    r = subprocess.run([promtool, "check", "config", str(out / "prometheus.yml")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "yamllint"), "-s", str(out)], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout


def test_generated_thresholds_drive_the_alerts(tmp_path: Path, promtool: str):
    """pi-b's 20 ms target fires on 30 ms requests that the default 50 ms target of pi-a tolerates."""
    inv = _inventory(tmp_path, {"pi-a": {}, "pi-b": {"edgeinfer_benchmark_p95_ms": 20}})
    out = _generate(tmp_path, inv)
    series = []
    for host in ("pi-a", "pi-b"):
        for le, v in (("0.025", "0x20"), ("0.05", "0+100x20"), ("+Inf", "0+100x20")):
            labels = f'job="edgeinfer",instance="{host}:9000",host="{host}",route="/encode",le="{le}"'
            series.append({"series": f"edgeinfer_request_duration_seconds_bucket{{{labels}}}", "values": v})
    test = {
        "rule_files": ["rules/edgeinfer.rules.yml", "rules/parameters.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": "EdgeInferLatencyP95High",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "job": "edgeinfer",
                                    "instance": "pi-b:9000",
                                    "host": "pi-b",
                                    "route": "/encode",
                                },
                                "exp_annotations": {
                                    "summary": "pi-b: P95 latency of /encode over target for 5 minutes",
                                    "description": "P95 of /encode on pi-b is 48.75ms over the last 5 minutes, above "
                                    "the deploy gate's target (edgeinfer_benchmark_p95_ms).",
                                    "runbook_url": "https://github.com/edgeinfer/deploy/blob/main/docs/runbooks.md#performance-degradation",
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    }
    (out / "generated.test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
    r = subprocess.run([promtool, "test", "rules", "generated.test.yml"], cwd=out, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_scrape_config_for_the_shipped_inventories(tmp_path: Path, promtool: str):
    for name, expect in (("local", "127.0.0.1:9000"), ("production", "edge.tailfdc654.ts.net:9000")):
        out = _generate(tmp_path / name, REPO / "inventory" / name)
        cfg = yaml.safe_load((out / "prometheus.yml").read_text())
        assert cfg["scrape_configs"][0]["static_configs"][0]["targets"] == [expect]
        r = subprocess.run([promtool, "check", "config", str(out / "prometheus.yml")], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


# -- a real Prometheus against the live sidecar -------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def prometheus(tmp_path: Path, live_sidecar) -> Iterator[str]:
    """Prometheus (the Debian package's server) with the generated config, scraping the live sidecar every second."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).is_file():
        pytest.fail("prometheus not found: install the Debian package prometheus")
    port = int(live_sidecar.url.rsplit(":", 1)[1])
    inv = _inventory(tmp_path, {"edge-live": {"edgeinfer_sidecar_port": port, "edgeinfer_monitoring_cadvisor_port": 0}})
    out = _generate(
        tmp_path,
        inv,
        edgeinfer_intended_model_version="v99-intended",
        edgeinfer_monitoring_scrape_interval="1s",
        edgeinfer_monitoring_evaluation_interval="1s",
        edgeinfer_monitoring_scrape_timeout="1s",
    )
    web = _free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={out / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{web}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{web}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)


def _query(url: str, expr: str) -> list[dict]:
    r = requests.get(url + "/api/v1/query", params={"query": expr}, timeout=10).json()
    assert r["status"] == "success", (expr, r)
    return r["data"]["result"]


def test_prometheus_scrapes_the_sidecar_and_every_panel_has_data(prometheus: str, live_sidecar):
    deadline = time.monotonic() + 40
    while True:
        send_traffic(live_sidecar, n=2)
        info = _query(prometheus, "edgeinfer_model_info")
        ratio = _query(prometheus, "edgeinfer:request_errors:ratio_rate5m")
        if info and ratio or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert info and info[0]["metric"]["host"] == "edge-live"
    assert info[0]["metric"]["intended_version"] == "v99-intended"
    assert info[0]["metric"]["model_version"] == "v72pct"
    assert _query(prometheus, 'up{job="edgeinfer"}')[0]["value"][1] == "1"
    # Every dashboard query, with Grafana's variables filled in, answers with data.
    for expr in _dashboard_exprs():
        filled = expr.replace("$__rate_interval", "1m").replace("$__range", "5m").replace("$host", ".*")
        assert _query(prometheus, filled), f"no data for the dashboard query {expr}"
    # Every rule loaded and evaluates without error.
    groups = requests.get(prometheus + "/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == len(_rules()) + 3
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
    # The sidecar serves v72pct, the inventory intends v99-intended: the drift alert is pending.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        alerts = requests.get(prometheus + "/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        drift = [a for a in alerts if a["labels"]["alertname"] == "EdgeInferModelVersionDrift"]
        if drift:
            break
        time.sleep(1)
    assert drift and drift[0]["state"] == "pending", alerts
    assert drift[0]["labels"]["model_version"] == "v72pct"
    assert not [a for a in alerts if a["labels"]["alertname"] in ("EdgeInferSidecarDown", "EdgeInferHailoFallback")]


# -- the monitoring compose profile -------------------------------------------


def test_monitoring_profile_composes_with_the_sidecar(tmp_path: Path, docker_engine):
    password = tmp_path / "grafana_admin_password"
    password.write_text("change-me\n")
    generated = tmp_path / "generated"
    generated.mkdir()
    env = dict(
        os.environ,
        EDGEINFER_IMAGE="edgeinfer/sidecar:0.1.0",
        EDGEINFER_MODELS_DIR=str(tmp_path),
        EDGEINFER_GRAFANA_ADMIN_PASSWORD_FILE=str(password),
        EDGEINFER_PROMETHEUS_CONFIG_DIR=str(generated),
    )
    base = ["docker", "compose", "-f", "sidecar/compose.yaml", "-f", str(COMPOSE_MONITORING.relative_to(REPO))]
    r = subprocess.run(
        [*base, "--profile", "cpu", "--profile", "monitoring", "config", "--format", "json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    services = json.loads(r.stdout)["services"]
    assert set(services) == {"edgeinfer-sidecar", "prometheus", "grafana", "cadvisor"}
    for name in ("prometheus", "grafana", "cadvisor"):
        assert services[name]["profiles"] == ["monitoring"]
        assert services[name]["network_mode"] == "host"
    mounts = {v["target"]: v["source"] for v in services["grafana"]["volumes"] if v["type"] == "bind"}
    assert mounts["/etc/grafana/provisioning"] == str(MONITORING / "grafana" / "provisioning")
    assert mounts["/var/lib/grafana/dashboards"] == str(MONITORING / "grafana" / "dashboards")
    prom = {v["target"]: v["source"] for v in services["prometheus"]["volumes"] if v["type"] == "bind"}
    assert prom["/etc/prometheus/edgeinfer"] == str(generated)
    assert "--web.listen-address=127.0.0.1:9090" in services["prometheus"]["command"]
    # The default config dir is build/monitoring of this checkout, where playbooks/monitoring.yml writes.
    env.pop("EDGEINFER_PROMETHEUS_CONFIG_DIR")
    r = subprocess.run(
        [*base, "--profile", "monitoring", "config", "--format", "json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    prom = {
        v["target"]: v["source"]
        for v in json.loads(r.stdout)["services"]["prometheus"]["volumes"]
        if v["type"] == "bind"
    }
    assert prom["/etc/prometheus/edgeinfer"] == str(REPO / "build" / "monitoring")
    # Without the profile, only the sidecar runs: monitoring is opt-in.
    r = subprocess.run(
        [*base, "--profile", "cpu", "config", "--services"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["edgeinfer-sidecar"]
