"""`cptr deploy k8s` on repositories that the real `cptr-export` wrote.

The chart is rendered and linted by Helm's own engine (Helm's Go SDK, through helm-python-sdk), every object is validated against the Kubernetes OpenAPI schemas
bundled in kubernetes-validate, the InferenceService against KServe's CRD schema
(tests/fixtures/kserve), and the Dockerfile is linted by hadolint. The model names, ports and
probes of the chart are checked against the repository's files, and, with the bundled Triton, a
server started with the chart's own arguments answers the chart's probes and reports the metrics
its autoscaler reads for the models the chart names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

from cptr import __version__  # noqa: E402
from cptr.deploy import DeployError, DeployOptions, RepositoryError, write_k8s  # noqa: E402
from tests.conftest import index_of  # noqa: E402

helm = pytest.importorskip("helm_python", reason="helm-python-sdk (Helm's own engine) is in [dev]: make setup")
FailCalled = helm.HelmError  # a template's `fail` or `required`, as Helm reports it


def render_chart(
    chart: Path, values: dict[str, Any] | None = None, release: str = "release-name", namespace: str = "default"
) -> dict[str, str]:
    """The chart rendered offline by Helm's engine (``helm template``): template path -> text."""
    return helm.Chart.load(str(chart)).render(values or None, name=release, namespace=namespace, is_install=True)


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """The Kubernetes objects of a rendering (YAML files only; empty documents dropped)."""
    return [d for rel, text in rendered.items() if rel.endswith((".yaml", ".yml")) for d in yaml.safe_load_all(text) if d]


ROOT = Path(__file__).resolve().parents[1]
KSERVE_SCHEMA = Path(__file__).parent / "fixtures" / "kserve" / "inferenceservice_v1beta1_schema.json"
RELEASE = "cptr-demo"


# --------------------------------------------------------------------------- fixtures


def _export(work: Path, backend: str) -> Path:
    """The real `cptr-export --style demo --backend BACKEND`, in-process (verification off: not what is tested here)."""
    from typer.testing import CliRunner

    from cptr.export.cli import app

    out = work / f"repo_{backend}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CPTR_HOME", str(work / "home"))
        result = CliRunner().invoke(app, ["--style", "demo", "--backend", backend, "--no-verify", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, f"cptr-export failed:\n{result.output}\n{result.exception!r}"
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx")
    return tmp_path_factory.mktemp("deploy")


@pytest.fixture(scope="module", params=["python", "native"])
def deployed(request: pytest.FixtureRequest, work: Path) -> dict[str, Any]:
    """A repository of each flavour and what `cptr deploy k8s` wrote for it."""
    repo = _export(work, request.param)
    res = write_k8s(DeployOptions(repository=repo, out=work / f"deploy_{request.param}", image="registry.example.com/cptr/cptr-triton"))
    return {"flavour": request.param, "repo": repo, "res": res, "out": res.out, "chart": res.out / "helm" / "cptr"}


def _repository_facts(repo: Path) -> dict[str, Any]:
    """What the repository says, read straight from its files (independently of cptr.deploy)."""
    index = index_of(repo)
    configs = {p.parent.name: p.read_text() for p in repo.glob("*/config.pbtxt")}
    ensembles = {n for n, text in configs.items() if 'platform: "ensemble"' in text}
    return {
        "index": index,
        "ensembles": ensembles,
        "stages": sorted(set(configs) - ensembles),
        "python": sorted(n for n, text in configs.items() if 'backend: "python"' in text),
        "gpu": any("KIND_GPU" in text for text in configs.values()),
    }


def _by_kind(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = {}
    for o in objs:
        assert o["kind"] not in kinds, f"two {o['kind']} objects"
        kinds[o["kind"]] = o
    return kinds


def _args(container: dict[str, Any]) -> dict[str, str]:
    out = {}
    for a in container["args"]:
        key, _, value = a.partition("=")
        out[key] = value
    return out


# --------------------------------------------------------------------------- the chart matches the repository


def test_chart_matches_the_exported_repository(deployed: dict[str, Any]) -> None:
    repo, chart = deployed["repo"], deployed["chart"]
    facts = _repository_facts(repo)
    values = yaml.safe_load((chart / "values.yaml").read_text())
    objs = _by_kind(manifests(render_chart(chart, release=RELEASE)))
    assert set(objs) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}

    # model names: the served ensembles in the index's order, the stages = every other model folder
    assert values["models"]["served"] == facts["index"]["ensembles"] and set(values["models"]["served"]) == facts["ensembles"]
    assert values["models"]["stages"] == facts["stages"]
    assert values["models"]["style"] == facts["index"]["style"] == "demo"
    assert values["models"]["flavour"] == deployed["flavour"] == facts["index"]["backend"]
    assert {"generate_demo", "cartoonize_demo", "synthesis_demo", "preprocess"} <= set(values["models"]["served"]) | set(facts["stages"])

    # ports: Triton's flags = the container's named ports = the Service's; probes on Triton's health API
    dep = objs["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    args = _args(c)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002} == values["triton"]["ports"]
    assert {k: int(args[f"--{k}-port"]) for k in ports} == ports
    svc = objs["Service"]
    assert {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]} == {n: (v, n) for n, v in ports.items()}
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(ports["metrics"])

    # graceful termination: strict readiness, and a grace period longer than Triton's exit timeout + preStop
    assert args["--strict-readiness"] == "true"
    exit_timeout = int(args["--exit-timeout-secs"])
    pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > exit_timeout + pre_stop

    # the repository: a read-only PVC by default, mounted where --model-repository points
    assert args["--model-repository"] == "/models"
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["model-repository"]["mountPath"] == "/models" and mounts["model-repository"]["readOnly"] is True
    assert mounts["model-repository"]["subPath"] == repo.name
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["model-repository"]["persistentVolumeClaim"] == {"claimName": "cptr-models", "readOnly": True}
    assert vols["dshm"]["emptyDir"]["medium"] == "Memory" and mounts["dshm"]["mountPath"] == "/dev/shm"

    # image: Python-backend models import cptr -> the CPTR image, built from the written Dockerfile
    assert facts["python"], "every CPTR repository has Python-backend models (pre/postprocess, seeds, style mix)"
    assert c["image"] == f"registry.example.com/cptr/cptr-triton:{__version__}-24.10-py3" == deployed["res"].image
    dockerfile = (deployed["out"] / "docker" / "Dockerfile").read_text()
    assert f"ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:{values['triton']['ngcTag']}\n" in dockerfile
    assert f"ARG CPTR_WHEEL=cptr-{__version__}-py3-none-any.whl\n" in dockerfile
    if deployed["flavour"] == "python":
        assert set(facts["python"]) == set(facts["stages"]) and "ARG CPTR_EXTRAS=export,align\n" in dockerfile

    # GPUs: native puts the ONNX stages on KIND_GPU -> one GPU; python runs everything on the CPU -> none
    limits = c["resources"]["limits"]
    if facts["gpu"]:
        assert deployed["flavour"] == "native" and limits["nvidia.com/gpu"] == 1 == c["resources"]["requests"]["nvidia.com/gpu"]
        assert args["--allow-gpu-metrics"] == "true" and "--pinned-memory-pool-byte-size" not in args
    else:
        assert deployed["flavour"] == "python" and "nvidia.com/gpu" not in limits
        assert args["--allow-gpu-metrics"] == "false" and args["--pinned-memory-pool-byte-size"] == "0"

    # autoscaling: the HPA's metric is the adapter rule's, computed over exactly the repository's stages
    hpa = objs["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": dep["metadata"]["name"]}
    (metric,) = hpa["spec"]["metrics"]
    adapter = yaml.safe_load((deployed["out"] / "prometheus-adapter" / "values.yaml").read_text())
    (rule,) = adapter["rules"]["custom"]
    assert metric["pods"]["metric"]["name"] == rule["name"]["as"] == "cptr_demo_queue_ms_per_request"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "50"}
    assert "nv_inference_queue_duration_us" in rule["metricsQuery"] and "nv_inference_request_success" in rule["metricsQuery"]
    for query in (rule["metricsQuery"], _isvc(deployed)["spec"]["predictor"]["autoScaling"]["metrics"][0]["external"]["metric"]["query"]):
        filters = set(re.findall(r'model=~"([^"]+)"', query))
        assert filters == {"|".join(facts["stages"])}, "the queue-time query must cover exactly the stage models"

    pdb = objs["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"] and pdb["spec"]["maxUnavailable"] == 1

    notes = render_chart(chart, release=RELEASE)["cptr/templates/NOTES.txt"]
    for name in facts["index"]["ensembles"]:
        assert f"  - {name}\n" in notes


def _isvc(deployed: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load((deployed["out"] / "kserve" / "inferenceservice.yaml").read_text())


# --------------------------------------------------------------------------- Kubernetes schemas

VARIANTS = {
    "defaults": {},
    "object-storage-servicemonitor-fixed-replicas": {
        "modelRepository": {"pvc": {"claimName": ""}, "uri": "s3://my-bucket/cptr/demo", "credentialsSecret": "cptr-s3"},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "autoscaling": {"enabled": False},
        "replicaCount": 3,
        "gpus": 2,
        "podDisruptionBudget": {"minAvailable": 2},
        "triton": {"extraArgs": ["--log-info=true"]},
        "env": [{"name": "OMP_NUM_THREADS", "value": "4"}],
        "imagePullSecrets": [{"name": "regcred"}],
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}


def _k8s_versions() -> list[str]:
    kv = pytest.importorskip("kubernetes_validate")
    return ["1.29.0", kv.utils.latest_version()]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_chart_passes_kubernetes_schemas(deployed: dict[str, Any], variant: str) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    objs = manifests(render_chart(deployed["chart"], VARIANTS[variant], release=RELEASE))
    checked = set()
    for obj in objs:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):  # a CRD kubernetes-validate has no schema for
            assert obj["kind"] == "ServiceMonitor" and obj["spec"]["endpoints"][0]["port"] == "metrics"
            continue
        for version in _k8s_versions():
            kv.validate(obj, version, strict=True)
        checked.add(obj["kind"])
    expected = {"Deployment", "Service", "PodDisruptionBudget"} | ({"HorizontalPodAutoscaler"} if variant == "defaults" else set())
    assert checked == expected
    if variant != "defaults":
        dep = _by_kind(objs)["Deployment"]
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        assert dep["spec"]["replicas"] == 3 and _args(c)["--model-repository"] == "s3://my-bucket/cptr/demo"
        assert c["envFrom"] == [{"secretRef": {"name": "cptr-s3"}}] and c["resources"]["limits"]["nvidia.com/gpu"] == 2
        assert "model-repository" not in {v["name"] for v in dep["spec"]["template"]["spec"]["volumes"]}


def test_schema_validation_can_fail(deployed: dict[str, Any]) -> None:
    """The validator is not a rubber stamp: the same objects with one wrong field are refused."""
    kv = pytest.importorskip("kubernetes_validate")
    objs = _by_kind(manifests(render_chart(deployed["chart"], release=RELEASE)))
    version = _k8s_versions()[-1]
    bad_probe = json.loads(json.dumps(objs["Deployment"]))
    bad_probe["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/v2/health/live"
    bad_port = json.loads(json.dumps(objs["Service"]))
    bad_port["spec"]["ports"][0]["port"] = "eight thousand"
    for obj in (bad_probe, bad_port):
        with pytest.raises(kv.ValidationError):
            kv.validate(obj, version, strict=True)


def test_chart_refuses_inconsistent_values(deployed: dict[str, Any]) -> None:
    chart = deployed["chart"]
    with pytest.raises(FailCalled, match="terminationGracePeriodSeconds"):
        render_chart(chart, {"terminationGracePeriodSeconds": 30})  # = exit timeout: Triton would be killed mid-drain
    with pytest.raises(FailCalled, match="not both"):
        render_chart(chart, {"modelRepository": {"uri": "s3://b/p"}})
    with pytest.raises(FailCalled, match="set modelRepository.pvc.claimName"):
        render_chart(chart, {"modelRepository": {"pvc": {"claimName": ""}}})
    with pytest.raises(FailCalled, match="minReplicas"):
        render_chart(chart, {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}})


def test_helm_lints_the_chart(deployed: dict[str, Any]) -> None:
    """``helm lint --strict`` (Helm's own engine) finds nothing to report."""
    report = helm.lint(str(deployed["chart"]), strict=True)
    assert not report["errors"] and not [m for m in report["messages"] if m["severity"] >= 2], report


# --------------------------------------------------------------------------- KServe


def _pruned_paths(schema: dict[str, Any], obj: Any, path: str = "") -> list[str]:
    """Paths of ``obj`` that fall on a property the vendored schema left unchecked."""
    if schema.get("x-cptr-pruned"):
        return [path]
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            sub = schema.get("properties", {}).get(k) or (
                schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else None
            )
            if sub:
                found += _pruned_paths(sub, v, f"{path}.{k}")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(obj):
            found += _pruned_paths(schema["items"], v, f"{path}[{i}]")
    return found


def test_inference_service_passes_kserve_crd_schema(deployed: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(KSERVE_SCHEMA.read_text())
    assert "kserve/kserve" in schema["$comment"] and "v0.20.0" in schema["$comment"]
    isvc = _isvc(deployed)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(isvc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
    assert not _pruned_paths(schema, isvc), "the InferenceService uses fields the vendored schema does not check"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", isvc["metadata"]["name"]) and len(isvc["metadata"]["name"]) <= 63

    # what KServe needs from it: the Triton runtime, this repository, the CPTR image, the same graceful stop
    facts = _repository_facts(deployed["repo"])
    pred = isvc["spec"]["predictor"]
    model = pred["model"]
    assert model["modelFormat"] == {"name": "triton"} and model["runtime"] == "kserve-tritonserver" and model["protocolVersion"] == "v2"
    assert model["storageUri"] == f"pvc://cptr-models/{deployed['repo'].name}"
    assert model["image"] == deployed["res"].image
    assert "--strict-readiness=true" in model["args"]
    exit_timeout = int(next(a for a in model["args"] if a.startswith("--exit-timeout-secs=")).split("=")[1])
    assert pred["terminationGracePeriodSeconds"] > exit_timeout
    assert ("nvidia.com/gpu" in model["resources"]["limits"]) == facts["gpu"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "keda"

    # and the schema can refuse: a misspelt field, a missing required one, a wrong enum
    for mutate in (
        lambda o: o["spec"]["predictor"]["model"].__setitem__("storageURI", "s3://x"),
        lambda o: o["spec"]["predictor"]["model"]["modelFormat"].pop("name"),
        lambda o: o["spec"]["predictor"]["autoScaling"]["metrics"][0]["external"]["metric"].__setitem__("backend", "influx"),
    ):
        bad = json.loads(json.dumps(isvc))
        mutate(bad)
        assert list(validator.iter_errors(bad))


# --------------------------------------------------------------------------- Dockerfile, CLI, README


def test_dockerfile_passes_hadolint(deployed: dict[str, Any]) -> None:
    exe = shutil.which("hadolint") or (
        str(Path(sys.executable).with_name("hadolint")) if Path(sys.executable).with_name("hadolint").exists() else None
    )
    if exe is None:
        pytest.skip("hadolint is not installed (pip install 'cptr[deploy]')")
    dockerfile = deployed["out"] / "docker" / "Dockerfile"
    r = subprocess.run([exe, "--no-color", "--failure-threshold", "info", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # hadolint does find problems: the same file with an unpinned apt install and a root user
    bad = dockerfile.with_name("Dockerfile.bad")
    bad.write_text(dockerfile.read_text().replace("# hadolint ignore=DL3008\n", "").replace("USER 1000:1000", "USER root"))
    r = subprocess.run([exe, "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "DL3008" in r.stdout and "DL3002" in r.stdout


def test_cli_writes_and_explains(work: Path, deployed: dict[str, Any], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cptr.cli import app

    repo = deployed["repo"]
    out = tmp_path / "deploy"
    r = CliRunner().invoke(
        app, ["deploy", "k8s", str(repo), "-o", str(out), "--model-uri", "s3://bucket/cptr/demo", "--max-replicas", "8", "--gpus", "1"]
    )
    assert r.exit_code == 0, r.output
    assert f"wrote {out}/" in r.output and "cptr_demo_queue_ms_per_request" in r.output
    values = yaml.safe_load((out / "helm" / "cptr" / "values.yaml").read_text())
    assert values["modelRepository"]["uri"] == "s3://bucket/cptr/demo" and values["modelRepository"]["pvc"]["claimName"] == ""
    assert values["autoscaling"]["maxReplicas"] == 8 and values["gpus"] == 1
    assert (
        yaml.safe_load((out / "kserve" / "inferenceservice.yaml").read_text())["spec"]["predictor"]["model"]["storageUri"]
        == "s3://bucket/cptr/demo"
    )
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (out / "docker" / "cptr-0.1.0-py3-none-any.whl").write_bytes(b"the user's wheel")  # survives a rewrite
    r = CliRunner().invoke(
        app,
        ["deploy", "k8s", str(repo), "-o", str(out), "--model-uri", "s3://bucket/cptr/demo", "--max-replicas", "8", "--gpus", "1", "-q"],
    )
    assert r.exit_code == 0 and r.output == ""
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix != ".whl"} == before
    assert (out / "docker" / "cptr-0.1.0-py3-none-any.whl").read_bytes() == b"the user's wheel"

    # errors that teach, exit 2, nothing written
    for argv, message in (
        ([str(tmp_path / "nowhere")], "does not exist; export one with: cptr-export"),
        ([str(tmp_path)], "has no cptr_repository.json"),
        ([str(repo), "--model-uri", "https://example.com/repo"], "use pvc://CLAIM/PATH"),
        ([str(repo), "-o", str(repo / "deploy")], "inside the model repository"),
        ([str(repo), "--min-replicas", "5", "--max-replicas", "2"], "--min-replicas (5) <= --max-replicas (2)"),
    ):
        r = CliRunner().invoke(app, ["deploy", "k8s", *argv])
        assert r.exit_code == 2 and message in r.output, (argv, r.output)
    assert not (repo / "deploy").exists()
    r = CliRunner().invoke(app, ["deploy"])
    assert r.exit_code == 0 and "k8s" in r.output


@pytest.mark.parametrize("command", ["deploy", "deploy k8s"])
def test_help_layout(command: str) -> None:
    """As tests/test_cli.py's: examples on their own indented lines, nothing wrapped, defaults shown (not eaten as markup)."""
    from tests.conftest import help_examples

    r, _, shown = help_examples(command)
    assert all(line.startswith("   cptr") for line in shown[:2]), shown[:3]
    if command == "deploy k8s":
        assert shown[2].startswith("   cptr deploy k8s triton_repo --model-uri s3://") and "(default: deploy/ next to the" in r.output


def test_library_errors_are_typed(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="no cptr_repository.json"):
        write_k8s(DeployOptions(repository=tmp_path))
    from cptr.deploy.k8s import parse_model_uri

    assert parse_model_uri("pvc://models/styles/demo").sub_path == "styles/demo"
    with pytest.raises(DeployError, match="not a valid PersistentVolumeClaim name"):
        parse_model_uri("pvc://Models_1/demo")


def _readme_section() -> str:
    """The Kubernetes page of the docs (it was the README's "Scaling out")."""
    return (ROOT / "docs" / "kubernetes.md").read_text()


def test_readme_commands_are_real(deployed: dict[str, Any], tmp_path: Path) -> None:
    """Every `cptr deploy k8s` line of docs/kubernetes.md runs, and its torchrun lines use real flags."""
    from typer.testing import CliRunner

    from cptr.cli import app

    section = _readme_section()
    lines = [ln.split("#")[0].strip() for ln in section.splitlines()]
    deploy_lines = [ln for ln in lines if ln.startswith("cptr deploy k8s")]
    assert deploy_lines
    for i, line in enumerate(deploy_lines):
        argv = line.split()[1:]
        argv = [str(deployed["repo"]) if a == "triton_repo" else a for a in argv]
        argv = [a for j, a in enumerate(argv) if not (a in ("-o", "--out") or (j and argv[j - 1] in ("-o", "--out")))]
        r = CliRunner().invoke(app, [*argv, "-o", str(tmp_path / f"d{i}")])
        assert r.exit_code == 0, (line, r.output)
    train_lines = [ln for ln in lines if ln.startswith("torchrun")]
    assert train_lines and all("-m cptr.training finetune" in ln for ln in train_lines)
    r = subprocess.run(
        [sys.executable, "-m", "cptr.training", "finetune", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert r.returncode == 0, r.stderr
    for ln in train_lines:
        for flag in re.findall(r"(--[a-z][a-z-]*)", ln.split("cptr.training finetune", 1)[1]):
            assert flag in r.stdout, f"README: cptr-train finetune has no {flag}"
        assert "--nnodes" in ln and "--rdzv-endpoint" in ln


# --------------------------------------------------------------------------- the chart's arguments on a real Triton


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_triton_started_with_the_charts_arguments(work: Path) -> None:
    """The bundled tritonserver (2.51, the chart's NGC 24.10) runs with the Deployment's own args on the
    python-flavour repository: the probes' paths answer on the http port, every model the chart names
    is ready, and the metrics port exposes the two counters of the autoscaling query for each stage."""
    pytest.importorskip("pytriton")
    from cptr.serving import server as ts

    repo = work / "repo_python"
    if not repo.is_dir():
        repo = _export(work, "python")
    res = write_k8s(DeployOptions(repository=repo, out=work / "deploy_triton"))
    ports = {k: ts.free_port() for k in ("http", "grpc", "metrics")}
    objs = _by_kind(manifests(render_chart(res.chart, {"triton": {"ports": ports}}, release=RELEASE)))
    (c,) = objs["Deployment"]["spec"]["template"]["spec"]["containers"]
    named = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert named == ports
    chart_args = [f"--model-repository={repo}" if a.startswith("--model-repository=") else a for a in c["args"]]

    class ChartServer(ts.TritonServer):
        def command(self) -> list[str]:  # the chart's command line, on loopback
            return [str(ts.server_binary()), f"--backend-directory={ts.backend_directory()}", "--http-address=127.0.0.1",
                    "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1", *chart_args]  # fmt: skip

    values = yaml.safe_load((res.chart / "values.yaml").read_text())
    with ChartServer(repo, ports["http"], ports["grpc"], ports["metrics"]) as server:
        base = f"http://127.0.0.1:{named[c['livenessProbe']['httpGet']['port']]}"
        assert _get(base + c["livenessProbe"]["httpGet"]["path"])[0] == 200
        assert _get(base + c["readinessProbe"]["httpGet"]["path"])[0] == 200
        assert set(server.ready_models()) == set(values["models"]["served"]) | set(values["models"]["stages"])
        body = json.dumps({"inputs": [
            {"name": "seed", "datatype": "INT64", "shape": [1, 1], "data": [7]},
            {"name": "mix", "datatype": "INT64", "shape": [1, 2], "data": [0, 0]},
        ], "outputs": [{"name": "output_bytes", "parameters": {"binary_data": True}}]}).encode()  # fmt: skip
        req = urllib.request.Request(f"{base}/v2/models/generate_demo/infer", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            assert r.status == 200
        deadline, text = time.monotonic() + 10, ""
        while time.monotonic() < deadline:
            text = _get(f"http://127.0.0.1:{named['metrics']}/metrics")[1].decode()
            if re.search(r'nv_inference_request_success\{model="synthesis_demo",version="1"\} [1-9]', text):
                break
            time.sleep(0.5)
        for stage in values["models"]["stages"]:
            for counter in ("nv_inference_queue_duration_us", "nv_inference_request_success"):
                assert re.search(rf'^{counter}\{{model="{stage}",version="1"\}} ', text, re.M), f"{counter} for {stage} missing"
        assert re.search(r'nv_inference_request_success\{model="synthesis_demo",version="1"\} [1-9]', text)
