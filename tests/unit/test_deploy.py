"""deploy/k8s: the manifests parse, the replicas name themselves and need more than one
replica's settings, and the autoscaler targets the replicas' Deployment."""

from __future__ import annotations

import yaml

from tests.support import ROOT


def _docs(name: str) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy" / "k8s" / name).read_text())}


def test_replicas_deployment_service_and_autoscaler_fit_together():
    docs = _docs("llmserve.yaml")
    deployment, service, hpa = docs["Deployment"], docs["Service"], docs["HorizontalPodAutoscaler"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["LLMSERVE_REPLICA__NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert int(env["LLMSERVE_REPLICA__COUNT"]["value"]) == deployment["spec"]["replicas"] > 1
    assert "LLMSERVE_DATABASE_URL" in env and container["readinessProbe"]["grpc"]["port"] == 50051
    assert container["readinessProbe"]["grpc"]["service"] == "" and container["livenessProbe"]["grpc"]["service"] == "liveness"
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert _docs("envoy.yaml")["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"][1] == "/etc/envoy/envoy.yaml"


def _exported_series(tmp_path) -> set[str]:
    """The series names a server exports (with no model loaded yet), as queries name them."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from models.engine.config import EngineConfig
    from models.manager import ModelManager
    from models.registry import ModelRegistry, default_specs
    from server.metrics import Metrics
    from storage import Database, JobRepository

    database = Database(f"sqlite:///{tmp_path / 'jobs.db'}")
    database.migrate()
    metrics = Metrics()
    metrics.watch(ModelManager(ModelRegistry(default_specs(), "smollm2"), tmp_path, EngineConfig()),
                  JobRepository(database))
    try:
        families = text_string_to_metric_families(generate_latest(metrics.registry).decode())
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        return {f.name + s for f in families for s in suffixes.get(f.type, ("",))}
    finally:
        database.dispose()


def test_grafana_dashboard_plots_only_exported_metrics(tmp_path):
    import json
    import re

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "llmserve.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {n for e in exprs for n in re.findall(r"\bllmserve_[a-z0-9_]+", e)}
    exported = _exported_series(tmp_path)
    assert used <= exported, used - exported
    for wanted in ("llmserve_time_to_first_token_seconds_bucket", "llmserve_inter_token_latency_seconds_bucket",
                   "llmserve_e2e_request_latency_seconds_bucket", "llmserve_queue_wait_seconds_bucket",
                   "llmserve_requests_total", "llmserve_rejections_total", "llmserve_requests_running",
                   "llmserve_requests_waiting", "llmserve_kv_slots_used", "llmserve_training_jobs",
                   "llmserve_hook_rows_running", "llmserve_batch_size_rows_bucket"):
        assert wanted in used, wanted
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_prometheus_scrapes_the_ports_the_servers_and_pods_expose():
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["llmserve"]["static_configs"][0]["targets"] == ["127.0.0.1:9464"]
    assert jobs["llmserve"]["metrics_path"] == "/metrics"
    pod = _docs("llmserve.yaml")["Deployment"]["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ports["metrics"] == int(env["LLMSERVE_METRICS__PORT"])
    assert env["LLMSERVE_METRICS__HOST"] == "0.0.0.0" and env["LLMSERVE_LOG__FORMAT"] == "json"
    keep = jobs["llmserve-kubernetes"]["relabel_configs"][0]
    assert keep["action"] == "keep" and keep["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
    hpa = _docs("llmserve.yaml")["HorizontalPodAutoscaler"]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "llmserve_requests_waiting"


def test_settings_read_the_deployment_environment():
    from server.settings import load_settings

    settings = load_settings([], {"LLMSERVE_METRICS__HOST": "0.0.0.0", "LLMSERVE_METRICS__PORT": "9464",
                                  "LLMSERVE_LOG__FORMAT": "json"})
    assert (settings.metrics.host, settings.metrics.port, settings.log.format) == ("0.0.0.0", 9464, "json")


def test_compose_stack_fits_together(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    import envoy_config

    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"llmserve", "envoy", "postgres", "redis", "prometheus", "grafana"}
    server = services["llmserve"]
    assert server["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert "postgres:5432" in server["environment"]["LLMSERVE_DATABASE_URL"]
    metrics_port = server["environment"]["LLMSERVE_METRICS__PORT"]
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "compose.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == [f"llmserve:{metrics_port}"]
    assert "./prometheus/compose.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]
    assert any(v.startswith("./grafana/llmserve.json:") for v in services["grafana"]["volumes"])
    # Envoy's config as the compose file's header renders it: both kinds of cluster on the service.
    out = envoy_config.render(0, 8080, 9901, tmp_path / "d.pb", tmp_path / "envoy.compose.yaml",
                              backends=[("llmserve", 50051)], dns=True, http_host="0.0.0.0")
    clusters = {c["name"]: c for c in envoy_config.load(out)["static_resources"]["clusters"]}
    address = clusters[envoy_config.METRICS_CLUSTER]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert address["endpoint"]["address"]["socket_address"] == {"address": "llmserve", "port_value": int(metrics_port)}
    assert any(v.endswith(":/etc/envoy/envoy.yaml:ro") and "envoy.compose.yaml" in v for v in services["envoy"]["volumes"])
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "EXPOSE 50051 9464" in dockerfile and '"server.main"' in dockerfile
    provisioning = yaml.safe_load((ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "llmserve.yml").read_text())
    assert provisioning["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
