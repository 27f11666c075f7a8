"""Kubernetes deployment of an exported repository: a Helm chart, a KServe InferenceService, the
Prometheus adapter rule and the image's Dockerfile, all derived from the repository's own files.

    deploy/                                   (next to the repository, or --out)
      helm/cptr/                              Chart.yaml, values.yaml (documented), templates/
      kserve/inferenceservice.yaml            the alternative: KServe's Triton runtime
      prometheus-adapter/values.yaml          the rule that turns Triton's metrics into the HPA's metric
      docker/Dockerfile                       NGC tritonserver + the cptr wheel (Python-backend models)
      README.md                               the exact commands for this repository

The chart's templates are static files in this package (``cptr/deploy/chart``); what depends on the
repository (model names, flavour, GPU, image, memory) is written into ``values.yaml`` and
``Chart.yaml``. Triton does the serving, Kubernetes the balancing and the HPA the scaling: nothing
here schedules requests.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from cptr import __version__
from cptr.contracts import DEFAULT_PORTS
from cptr.deploy.repository import RepositoryInfo, read_repository
from cptr.io import atomic_directory, atomic_write_text

# NGC release of tritonserver 2.51: the version nvidia-pytriton 0.7 bundles, which `cptr serve`
# runs and the test suite serves both flavours with. Its image has Python 3.10 and TensorRT 10.5.
DEFAULT_TRITON_TAG = "24.10-py3"
NGC_TRITON_IMAGE = "nvcr.io/nvidia/tritonserver"
DEFAULT_IMAGE = "cptr-triton"
# Triton's own defaults (and `cptr serve`'s).
PORTS = dict(DEFAULT_PORTS)
HEALTH_LIVE = "/v2/health/live"
HEALTH_READY = "/v2/health/ready"
GPU_RESOURCE = "nvidia.com/gpu"
STORAGE_SCHEMES = ("pvc", "s3", "gs")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_CUDA_INDEX = "https://download.pytorch.org/whl/cu126"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_MIB = 1 << 20


class DeployError(ValueError):
    """An option or the repository does not allow a deployment; the message says what to change."""


@dataclass
class DeployOptions:
    """What ``cptr deploy k8s`` takes; every field but ``repository`` has a default derived from it."""

    repository: Path = Path("triton_repo")
    out: Path | None = None  # default: <repository>/../deploy
    image: str = DEFAULT_IMAGE  # image repository of the CPTR image, e.g. registry.example.com/cptr/cptr-triton
    image_tag: str | None = None  # default: <cptr version>-<triton tag>
    triton_tag: str | None = None  # NGC tritonserver tag; default DEFAULT_TRITON_TAG
    model_uri: str | None = None  # pvc://CLAIM/PATH, s3://BUCKET/PATH or gs://BUCKET/PATH
    gpus: int | None = None  # default: 1 when a model runs on a GPU, else 0
    name: str | None = None  # InferenceService name; default cptr-<style>
    namespace: str = "default"
    prometheus_url: str = "http://prometheus-server.monitoring.svc"
    min_replicas: int = 1
    max_replicas: int = 4
    target_queue_ms: float = 50.0
    exit_timeout_s: int = 30


@dataclass
class DeployResult:
    """What was written, and what the user should know about it."""

    out: Path
    chart: Path
    files: list[Path]
    repository: RepositoryInfo
    image: str
    metric_name: str
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelStorage:
    """Where the cluster finds the repository: a PersistentVolumeClaim path, or object storage."""

    uri: str
    claim: str = ""
    sub_path: str = ""

    @property
    def is_pvc(self) -> bool:
        return bool(self.claim)


def parse_model_uri(uri: str) -> ModelStorage:
    """``pvc://CLAIM[/PATH]`` (mounted read-only) or ``s3://`` / ``gs://`` (read by Triton and KServe)."""
    m = re.match(r"^([a-z0-9]+)://(.+)$", uri or "")
    if not m or m.group(1) not in STORAGE_SCHEMES:
        raise DeployError(
            f"model URI {uri!r} is not one Triton and KServe both read; use pvc://CLAIM/PATH (a PersistentVolumeClaim "
            "holding the repository), s3://BUCKET/PATH or gs://BUCKET/PATH"
        )
    if m.group(1) != "pvc":
        return ModelStorage(uri=uri)
    claim, _, sub = m.group(2).partition("/")
    if not _DNS_LABEL.match(claim):
        raise DeployError(f"{claim!r} in {uri!r} is not a valid PersistentVolumeClaim name (lowercase letters, digits, '-')")
    return ModelStorage(uri=uri, claim=claim, sub_path=sub.strip("/"))


def dns_name(text: str) -> str:
    """A DNS-1123 label made from ``text`` (lowercase, '_' -> '-', at most 63 characters)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].rstrip("-")
    if not name:
        raise DeployError(f"cannot make a Kubernetes name from {text!r}; pass --name")
    return name


def release_name(style: str) -> str:
    """The Helm release name the generated README uses (it contains the chart's name, so objects are named after it)."""
    return dns_name(f"cptr-{style}")


def metric_name(style: str) -> str:
    """The custom metric (Prometheus adapter -> HPA) of one style: mean queue time per request, in ms."""
    return f"cptr_{re.sub(r'[^A-Za-z0-9_]', '_', style)}_queue_ms_per_request"


def queue_ms_query(stages: list[str], selector: str, group_by: str | None = None) -> str:
    """PromQL: Triton's queue time per request (ms) over the models that execute.

    ``nv_inference_queue_duration_us`` over ``nv_inference_request_success`` (both counters), summed
    over the repository's stage models. Ensembles are left out: each of their requests is counted
    again in the stages it runs. ``clamp_min`` keeps an idle pod at 0 instead of NaN.
    """
    models = f'model=~"{"|".join(stages)}"'
    sel = f"{selector},{models}" if selector else models
    by = f" by ({group_by})" if group_by else ""
    return (
        f"sum{by} (rate(nv_inference_queue_duration_us{{{sel}}}[1m]))\n"
        f"/ clamp_min(sum{by} (rate(nv_inference_request_success{{{sel}}}[1m])), 0.001)\n"
        "/ 1000"
    )


def _quantity(nbytes: int) -> str:
    return f"{math.ceil(nbytes / (256 * _MIB)) * 256}Mi"


def memory_request(info: RepositoryInfo) -> int:
    """An estimate: 1 GiB for Triton, 256 MiB per Python-backend stub process, twice the model files."""
    return (1024 + 256 * len(info.python_models)) * _MIB + 2 * info.model_bytes


def _y(value: object) -> str:
    """A YAML scalar or flow collection (JSON is YAML)."""
    return json.dumps(value)


def _image_for(info: RepositoryInfo, opts: DeployOptions, triton_tag: str) -> tuple[str, str]:
    if info.needs_cptr:
        return opts.image, opts.image_tag or f"{__version__}-{triton_tag}"
    return NGC_TRITON_IMAGE, opts.image_tag or triton_tag


def _values_yaml(
    info: RepositoryInfo, opts: DeployOptions, storage: ModelStorage, image: tuple[str, str], gpus: int, triton_tag: str
) -> str:
    mem = memory_request(info)
    python_models = info.python_models
    image_why = (
        f"the NGC Triton image with CPTR installed (deploy/docker/Dockerfile): {len(python_models)} models of this\n"
        "  # repository run on Triton's Python backend, and their model.py imports cptr."
        if info.needs_cptr
        else "NGC's own tritonserver image: no model of this repository needs CPTR installed."
    )
    gpu_why = (
        "models of this repository run on a GPU (KIND_GPU instances or compiled engines)"
        if info.uses_gpu
        else "every model of this repository runs on the CPU (ONNX Runtime's CPU provider);\n"
        "# set 1 for a GPU node anyway (Triton then also reports GPU metrics)"
    )
    grace = opts.exit_timeout_s + 5 + 10
    return f"""\
# Values of the CPTR chart, written by `cptr deploy k8s` from the model repository
#   {info.path}
# (style {info.style!r}, {info.flavour} flavour, {len(info.models)} models). Override any value with
# `helm install ... --set key=value` or `-f my-values.yaml`; `cptr deploy k8s` rewrites this file.

# What the repository serves, read from cptr_repository.json and each config.pbtxt. `served` are the
# ensembles clients call; `stages` are the models that execute, whose queue time drives the autoscaler.
models:
  style: {_y(info.style)}
  flavour: {_y(info.flavour)}
  served: {_y(list(info.ensembles))}
  stages: {_y(info.stages)}

image:
  # {image_why}
  repository: {_y(image[0])}
  tag: {_y(image[1])}
  pullPolicy: IfNotPresent
# e.g. [{{name: my-registry-secret}}]
imagePullSecrets: []

nameOverride: ""
fullnameOverride: ""

triton:
  # NGC tritonserver release the image is built on (informational; the Dockerfile's base).
  ngcTag: {_y(triton_tag)}
  # Ports of Triton's endpoints (also the Service's). The probes use the HTTP port.
  ports:
    http: {PORTS["http"]}
    grpc: {PORTS["grpc"]}
    metrics: {PORTS["metrics"]}
  # On SIGTERM Triton stops taking requests and waits this long for in-flight ones (--exit-timeout-secs).
  exitTimeoutSeconds: {opts.exit_timeout_s}
  logVerbose: 0
  # More tritonserver flags, e.g. ["--model-control-mode=none", "--log-info=true"].
  extraArgs: []

# Seconds to keep serving after the pod is marked for deletion, so the Service stops routing to it
# before Triton stops accepting requests.
preStopSleepSeconds: 5
# Must be longer than triton.exitTimeoutSeconds + preStopSleepSeconds (the chart refuses otherwise).
terminationGracePeriodSeconds: {grace}

# Where Triton reads the repository that cptr-export wrote. Set exactly one of:
#   pvc.claimName: a PersistentVolumeClaim holding it (mounted read-only at mountPath; subPath: its folder)
#   uri: object storage Triton reads itself (s3://bucket/path, gs://bucket/path)
modelRepository:
  mountPath: /models
  pvc:
    claimName: {_y(storage.claim)}
    subPath: {_y(storage.sub_path)}
  uri: {_y("" if storage.is_pvc else storage.uri)}
  # A Secret whose keys become environment variables, e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
  # AWS_DEFAULT_REGION for s3:// or GOOGLE_APPLICATION_CREDENTIALS for gs://.
  credentialsSecret: ""

# GPUs per replica ({GPU_RESOURCE}): {gpus} because {gpu_why}.
gpus: {gpus}
gpuResource: {_y(GPU_RESOURCE)}

# Requests and limits of the Triton container (GPUs come from `gpus`). The memory request is an
# estimate from the repository: 1 GiB for Triton, 256 MiB per Python-backend model (each runs in
# its own stub process), twice the {info.model_bytes / _MIB:.1f} MiB of model files. No CPU limit: a
# throttled server queues requests, which the autoscaler would read as load.
resources:
  requests:
    cpu: {_y("2" if info.flavour == "python" else "1")}
    memory: {_y(_quantity(mem))}
  limits:
    memory: {_y(_quantity(2 * mem))}

# /dev/shm for the Python backend's tensors between Triton and its stub processes.
sharedMemorySize: 1Gi

# Replicas when autoscaling is off; with autoscaling on, the HorizontalPodAutoscaler owns the count.
replicaCount: 1

# HorizontalPodAutoscaler on Triton's queue time per request (milliseconds), a per-pod custom
# metric served by the Prometheus adapter with the rule in deploy/prometheus-adapter/values.yaml.
autoscaling:
  enabled: true
  minReplicas: {opts.min_replicas}
  maxReplicas: {opts.max_replicas}
  metricName: {_y(metric_name(info.style))}
  # Add replicas while the mean queue time per request is above this.
  targetQueueMilliseconds: {_y(_num(opts.target_queue_ms))}
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 30
      policies:
        - type: Pods
          value: 2
          periodSeconds: 60
    scaleDown:
      stabilizationWindowSeconds: 300
      policies:
        - type: Pods
          value: 1
          periodSeconds: 120

# Voluntary disruptions (node drains, upgrades) take at most this many replicas at a time.
# Set minAvailable instead to keep a floor (it wins when set).
podDisruptionBudget:
  enabled: true
  maxUnavailable: 1
  minAvailable: null

probes:
  # Loading every model (ONNX sessions, Python stubs) may take minutes: up to periodSeconds x failureThreshold.
  startup:
    periodSeconds: 10
    timeoutSeconds: 5
    failureThreshold: 60
  liveness:
    periodSeconds: 10
    timeoutSeconds: 5
    failureThreshold: 3
  readiness:
    periodSeconds: 5
    timeoutSeconds: 5
    failureThreshold: 2

service:
  # ClusterIP balances connections, not requests: a gRPC client keeps one connection (one replica).
  # Spread gRPC load with a gRPC-aware proxy or several clients, or use HTTP.
  type: ClusterIP
  annotations: {{}}

metrics:
  # prometheus.io/scrape annotations on the pods (Prometheus' kubernetes-pods job).
  podAnnotations: true
  # A ServiceMonitor instead, for the Prometheus Operator (kube-prometheus-stack).
  serviceMonitor:
    enabled: false
    interval: 15s
    labels: {{}}

# The NGC image runs as user triton-server (uid 1000).
podSecurityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 1000
  fsGroup: 1000
securityContext:
  allowPrivilegeEscalation: false
  capabilities:
    drop: ["ALL"]

env: []
podLabels: {{}}
podAnnotations: {{}}
nodeSelector: {{}}
tolerations: []
affinity: {{}}
topologySpreadConstraints: []
"""


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else float(x)


def _chart_yaml(info: RepositoryInfo, image: tuple[str, str]) -> str:
    return f"""\
apiVersion: v2
name: cptr
description: {_y(f"CPTR style {info.style!r} ({info.flavour} flavour) served by NVIDIA Triton, autoscaled on its queue time")}
type: application
version: {_y(__version__)}
appVersion: {_y(image[1])}
kubeVersion: ">=1.23.0-0"
keywords: [cptr, triton, stylegan2]
annotations:
  cptr/style: {_y(info.style)}
  cptr/flavour: {_y(info.flavour)}
  cptr/repository: {_y(str(info.path))}
"""


def _adapter_values(info: RepositoryInfo, opts: DeployOptions) -> str:
    query = queue_ms_query(info.stages, "<<.LabelMatchers>>", "<<.GroupBy>>")
    body = "\n".join("        " + line for line in query.splitlines())
    url, _, port = opts.prometheus_url.rpartition(":")
    if not port.isdigit() or "//" not in url:
        url, port = opts.prometheus_url, "80"
    return f"""\
# Values for the prometheus-community/prometheus-adapter chart: the custom metric the CPTR chart's
# HorizontalPodAutoscaler reads. Written by `cptr deploy k8s` for style {info.style!r}.
#
#   helm repo add prometheus-community https://prometheus-community.github.io/helm-charts
#   helm install prometheus-adapter prometheus-community/prometheus-adapter -n monitoring -f values.yaml
#
# The metric: Triton's cumulative queue time (nv_inference_queue_duration_us) over its successful
# requests (nv_inference_request_success), per pod, over the models that execute (not the
# ensembles, whose requests the stages count again), in milliseconds. Prometheus must scrape the
# pods' metrics port with namespace and pod labels: the chart's prometheus.io annotations do that for
# the prometheus chart's kubernetes-pods job; kube-prometheus-stack needs metrics.serviceMonitor.enabled.
prometheus:
  url: {_y(url)}
  port: {port}
rules:
  default: false
  custom:
    - seriesQuery: 'nv_inference_queue_duration_us{{namespace!="",pod!=""}}'
      resources:
        overrides:
          namespace: {{resource: namespace}}
          pod: {{resource: pod}}
      name:
        matches: "^nv_inference_queue_duration_us$"
        as: {_y(metric_name(info.style))}
      metricsQuery: |-
{body}
"""


def _inference_service(
    info: RepositoryInfo, opts: DeployOptions, storage: ModelStorage, image: tuple[str, str], gpus: int, triton_tag: str
) -> str:
    name = opts.name or release_name(info.style)
    if not _DNS_LABEL.match(name):
        raise DeployError(f"--name {name!r} is not a DNS-1123 label (lowercase letters, digits and '-', at most 63)")
    if not _DNS_LABEL.match(opts.namespace):
        raise DeployError(f"--namespace {opts.namespace!r} is not a DNS-1123 label")
    selector = f'namespace="{opts.namespace}",pod=~"{name}-predictor-.*"'
    query = queue_ms_query(info.stages, selector)
    mem = memory_request(info)
    requests = {"cpu": "2" if info.flavour == "python" else "1", "memory": _quantity(mem)}
    limits = {"memory": _quantity(2 * mem)}
    if gpus:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(gpus)
    image_line = f"image: {_y(f'{image[0]}:{image[1]}')}" if info.needs_cptr else f"runtimeVersion: {_y(triton_tag)}"
    image_note = (
        "# The CPTR image (deploy/docker/Dockerfile) replaces the runtime's: Python-backend models import cptr."
        if info.needs_cptr
        else "# The runtime's own tritonserver image, at this NGC tag."
    )
    query_yaml = "\n".join("                " + line for line in query.splitlines())
    return f"""\
# KServe InferenceService: the alternative to the Helm chart, on KServe's Triton runtime
# (ClusterServingRuntime kserve-tritonserver, model format "triton"), written by `cptr deploy k8s`
# for style {info.style!r} ({info.flavour} flavour). KServe copies the repository from storageUri to
# /mnt/models. Standard (raw Deployment) mode with KEDA scales on the same signal as the chart:
# Triton's queue time per request in ms, queried from Prometheus.
#
#   kubectl apply -n {opts.namespace} -f inferenceservice.yaml
#   kubectl get inferenceservice {name} -n {opts.namespace}
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
  namespace: {opts.namespace}
  labels:
    cptr/style: {_y(info.style)}
  annotations:
    serving.kserve.io/deploymentMode: Standard
    serving.kserve.io/autoscalerClass: keda
spec:
  predictor:
    minReplicas: {opts.min_replicas}
    maxReplicas: {opts.max_replicas}
    # Longer than --exit-timeout-secs: in-flight requests finish before the pod is killed.
    terminationGracePeriodSeconds: {opts.exit_timeout_s + 15}
    autoScaling:
      metrics:
        - type: External
          external:
            metric:
              backend: prometheus
              serverAddress: {_y(opts.prometheus_url)}
              query: |-
{query_yaml}
            target:
              type: Value
              value: {_y(str(_num(opts.target_queue_ms)))}
    model:
      modelFormat:
        name: triton
      protocolVersion: v2
      runtime: kserve-tritonserver
      {image_note}
      {image_line}
      storageUri: {_y(storage.uri)}
      args:
        - --strict-readiness=true
        - --exit-timeout-secs={opts.exit_timeout_s}
      resources:
        requests: {_y(requests)}
        limits: {_y(limits)}
      volumeMounts:
        - name: dshm
          mountPath: /dev/shm
    volumes:
      # Triton's Python backend passes tensors to its stub processes through /dev/shm.
      - name: dshm
        emptyDir:
          medium: Memory
          sizeLimit: 1Gi
"""


def _torch_install(info: RepositoryInfo) -> tuple[str, str]:
    """(torch version, index URL) for the image: the exporting torch; CUDA only for AOTInductor engines."""
    has_torch_engines = any(f.endswith(".pt2") for m in info.models.values() for f in m.files)
    version = info.torch_version or "2.6.0"
    return version, TORCH_CUDA_INDEX if has_torch_engines else TORCH_CPU_INDEX


def _dockerfile(info: RepositoryInfo, triton_tag: str, image: tuple[str, str]) -> str:
    torch_version, torch_index = _torch_install(info)
    align = any(m.startswith("preprocess") for m in info.models)
    extras = ["export"] + (["align"] if align else [])
    checks = ["cptr.serving.stages", "cptr.engines.onnxruntime"] + (["cptr.align"] if align else [])
    wheel = f"cptr-{__version__}-py3-none-any.whl"
    return f"""\
# syntax=docker/dockerfile:1
# CPTR's Triton image: NGC tritonserver {triton_tag} with the cptr package installed, because the
# repository's Python-backend models (model.py files that import cptr) run inside it. Written by
# `cptr deploy k8s` for style {info.style!r} ({info.flavour} flavour).
#
# The build context is this folder, holding the CPTR wheel; see README.md beside it:
#   python3 -m pip wheel --no-deps --wheel-dir deploy/docker /path/to/CPTR
#   docker build -t {image[0]}:{image[1]} deploy/docker
# Packages come from the index while the image is built; the container itself needs no network.
ARG TRITON_IMAGE={NGC_TRITON_IMAGE}:{triton_tag}
FROM ${{TRITON_IMAGE}}

ARG CPTR_WHEEL={wheel}
ARG CPTR_EXTRAS={",".join(extras)}
# torch is a dependency of cptr: the version that exported the models, the CPU build unless the
# repository holds torch engines (model.pt2), which need CUDA.
ARG TORCH_VERSION={torch_version}
ARG TORCH_INDEX_URL={torch_index}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# OpenCV (face alignment, in the preprocess model) loads libGL and GLib, which the NGC image lacks.
# hadolint ignore=DL3008
RUN apt-get update \\
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \\
    && rm -rf /var/lib/apt/lists/*

COPY ${{CPTR_WHEEL}} /tmp/wheels/
# PIP_BREAK_SYSTEM_PACKAGES: NGC images from 25.01 on (Ubuntu 24.04) mark the system Python as managed.
RUN export PIP_BREAK_SYSTEM_PACKAGES=1 \\
    && python3 -m pip install --no-cache-dir --index-url "${{TORCH_INDEX_URL}}" "torch==${{TORCH_VERSION}}" \\
    && python3 -m pip install --no-cache-dir "/tmp/wheels/${{CPTR_WHEEL}}[${{CPTR_EXTRAS}}]" \\
    && rm -rf /tmp/wheels \\
    && python3 -c "import {", ".join(checks)}"

# triton-server, the NGC image's unprivileged user (the chart's securityContext runs as this uid too).
USER 1000:1000
"""


def _readme(info: RepositoryInfo, opts: DeployOptions, out: Path, storage: ModelStorage, image: tuple[str, str], metric: str) -> str:
    rel = out.name
    ref = f"{image[0]}:{image[1]}"
    release = release_name(info.style)
    copy = (
        f"""\
# the repository into the PersistentVolumeClaim {storage.claim!r} (ReadWriteMany or ReadOnlyMany), folder {storage.sub_path or "."}:
kubectl run cptr-copy --image=busybox --restart=Never --overrides='{{"spec":{{"volumes":[{{"name":"m","persistentVolumeClaim":{{"claimName":"{storage.claim}"}}}}],"containers":[{{"name":"cptr-copy","image":"busybox","command":["sleep","3600"],"volumeMounts":[{{"name":"m","mountPath":"/models"}}]}}]}}}}'
kubectl wait --for=condition=Ready pod/cptr-copy
kubectl cp {info.path} cptr-copy:/models/{storage.sub_path}
kubectl delete pod cptr-copy"""
        if storage.is_pvc
        else (
            f"aws s3 sync {info.path} {storage.uri}"
            if storage.uri.startswith("s3://")
            else f"gcloud storage rsync -r {info.path} {storage.uri}"
        )
    )
    build = (
        f"""\
## 1. Build and push the image

```bash
python3 -m pip wheel --no-deps --wheel-dir {rel}/docker /path/to/CPTR     # the cptr wheel, from a CPTR checkout
docker build -t {ref} {rel}/docker
docker push {ref}
```
"""
        if info.needs_cptr
        else f"## 1. The image\n\nNGC's `{ref}` serves this repository as it is; nothing to build.\n"
    )
    return f"""\
# Deploying style `{info.style}` on Kubernetes

Written by `cptr deploy k8s` from `{info.path}` ({info.flavour} flavour). Served models:
{", ".join(f"`{e}`" for e in info.ensembles)}. Run these commands from the folder that holds `{rel}/`.

{build}
## 2. Put the repository where the cluster reads it ({storage.uri})

```bash
{copy}
```

## 3. Metrics: Prometheus and the adapter rule

```bash
helm repo add prometheus-community https://prometheus-community.github.io/helm-charts
helm install prometheus prometheus-community/prometheus -n monitoring --create-namespace
helm install prometheus-adapter prometheus-community/prometheus-adapter -n monitoring -f {rel}/prometheus-adapter/values.yaml
kubectl get --raw /apis/custom.metrics.k8s.io/v1beta1 | grep {metric}
```

## 4. Install the chart and watch the autoscaler

```bash
helm install {release} {rel}/helm/cptr -n {opts.namespace}
kubectl rollout status deployment/{release} -n {opts.namespace}
kubectl get hpa {release} -n {opts.namespace} --watch
```

Or, with KServe (KEDA for autoscaling): `kubectl apply -f {rel}/kserve/inferenceservice.yaml`.

## 5. New styles and re-exports, without downtime

Export the next release of the repository (new styles, other alphas) to a new folder or prefix, never
into the one the pods read, then point the release at it. The pod template changes, so the
Deployment rolls one pod at a time (maxSurge 1, maxUnavailable 0): a new pod takes traffic once every
model has loaded, an old one leaves the Service, then finishes its in-flight requests before it stops.

```bash
helm upgrade {release} {rel}/helm/cptr -n {opts.namespace} --reuse-values --set modelRepository.{"uri=<new uri>" if not storage.is_pvc else "pvc.subPath=<new folder>"}
kubectl rollout status deployment/{release} -n {opts.namespace}     # `kubectl rollout undo` goes back
```
"""


def write_k8s(opts: DeployOptions) -> DeployResult:
    """Write the chart, the InferenceService, the adapter rule, the Dockerfile and a README for ``opts.repository``.

    The chart folder is replaced as a whole (a stale template never survives); the other files
    are each written atomically, and anything else already in the output folder is left alone.
    """
    info = read_repository(opts.repository)
    out = Path(opts.out) if opts.out is not None else info.path.parent / "deploy"
    out = out.expanduser().resolve()
    if out == info.path or info.path in out.parents:
        raise DeployError(f"--out {out} is inside the model repository: Triton would take its folders for models; choose another folder")
    triton_tag = opts.triton_tag or DEFAULT_TRITON_TAG
    storage = parse_model_uri(opts.model_uri or f"pvc://cptr-models/{info.path.name}")
    gpus = int(info.uses_gpu) if opts.gpus is None else int(opts.gpus)
    if gpus < 0:
        raise DeployError("--gpus must be 0 or more")
    if not 1 <= opts.min_replicas <= opts.max_replicas:
        raise DeployError(f"replicas: need 1 <= --min-replicas ({opts.min_replicas}) <= --max-replicas ({opts.max_replicas})")
    if opts.target_queue_ms <= 0:
        raise DeployError("--target-queue-ms must be positive")
    image = _image_for(info, opts, triton_tag)
    notes: list[str] = []
    if info.uses_gpu and gpus == 0:
        notes.append("some models run on a GPU (KIND_GPU or engines) but --gpus 0 was given: they will fail to load")
    if info.tensorrt_versions:
        notes.append(
            f"the TensorRT plans were built with TensorRT {', '.join(info.tensorrt_versions)} and load only there: "
            f"the image's NGC release ({triton_tag}) must ship that version (pass --triton-tag)"
        )

    chart = out / "helm" / "cptr"
    with atomic_directory(chart) as tmp:
        src = resources.files("cptr.deploy") / "chart"
        for item in ("templates", ".helmignore"):
            with resources.as_file(src / item) as p:
                (shutil.copytree if p.is_dir() else shutil.copyfile)(p, tmp / item)
        atomic_write_text(tmp / "Chart.yaml", _chart_yaml(info, image))
        atomic_write_text(tmp / "values.yaml", _values_yaml(info, opts, storage, image, gpus, triton_tag))
    files = sorted(p for p in chart.rglob("*") if p.is_file())
    extra = {
        out / "kserve" / "inferenceservice.yaml": _inference_service(info, opts, storage, image, gpus, triton_tag),
        out / "prometheus-adapter" / "values.yaml": _adapter_values(info, opts),
        out / "README.md": _readme(info, opts, out, storage, image, metric_name(info.style)),
    }
    if info.needs_cptr:
        extra[out / "docker" / "Dockerfile"] = _dockerfile(info, triton_tag, image)
    for path, text in extra.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        files.append(path)
    return DeployResult(
        out=out, chart=chart, files=files, repository=info, image=f"{image[0]}:{image[1]}", metric_name=metric_name(info.style), notes=notes
    )
