"""The cluster recipes in experiments/cluster parse and say what a search needs on every node."""

import copy
import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "experiments", "cluster")


def load(name):
    with open(os.path.join(CLUSTER, name), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def test_the_ray_launcher_config_passes_rays_own_schema_and_starts_every_node_with_token_auth():
    from ray.autoscaler._private.util import validate_config

    cfg = load("ray-cluster-aws-gpu.yaml")
    validate_config(cfg)  # Ray's ray-schema.json: raises on an unknown or mistyped key
    broken = copy.deepcopy(cfg)
    broken["available_node_types"]["gpu_worker"]["min_wokers"] = 1  # a typo the schema must catch
    with pytest.raises(Exception, match="min_wokers"):
        validate_config(broken)
    assert cfg["head_node_type"] in cfg["available_node_types"]
    assert cfg["available_node_types"][cfg["head_node_type"]]["resources"] == {"CPU": 0}  # no trial on the head
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = [c for c in cfg[key] if "ray start" in c]
        assert start and all("RAY_AUTH_MODE=token" in c for c in start)
    assert "~/.ray/auth_token" in cfg["file_mounts"]
    assert any("make install" in c for c in cfg["setup_commands"])  # the package on every node
    assert any("/data" in c for c in cfg["initialization_commands"])  # the data at one path everywhere


def test_the_kuberay_manifest_gives_every_pod_the_image_the_data_and_the_token():
    cfg = load("kuberay-gpu.yaml")
    assert cfg["apiVersion"] == "ray.io/v1" and cfg["kind"] == "RayCluster"
    spec = cfg["spec"]
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    pods = [head["template"]["spec"]] + [g["template"]["spec"] for g in spec["workerGroupSpecs"]]
    images = {c["image"] for p in pods for c in p["containers"]}
    assert len(images) == 1  # one image: the same package version on every node
    for pod in pods:
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token" and "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts.get("/data") == "data"
        assert "data" in {v["name"] for v in pod["volumes"]}
    for group in spec["workerGroupSpecs"]:
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert int(limits["nvidia.com/gpu"]) >= 1
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
