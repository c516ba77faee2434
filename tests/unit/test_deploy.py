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
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert _docs("envoy.yaml")["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"][1] == "/etc/envoy/envoy.yaml"
