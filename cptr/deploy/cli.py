"""``cptr deploy``: deployment files for an exported repository (a thin wrapper of :func:`cptr.deploy.write_k8s`)."""

from __future__ import annotations

from pathlib import Path

import typer

from cptr.deploy import DeployError, DeployOptions, RepositoryError, write_k8s

app = typer.Typer(
    help="Deploy an exported repository past one machine: many Triton replicas on Kubernetes.\n\n"
    "k8s writes a Helm chart, a KServe InferenceService, the Prometheus adapter rule and a Dockerfile.\n\n"
    "Examples:\n\n"
    "  cptr deploy k8s triton_repo --image registry.example.com/cptr/cptr-triton\n"
    "  cptr deploy k8s --help",
    add_completion=False,
)


@app.command("k8s")
def k8s(
    repository: Path = typer.Argument(Path("triton_repo"), help="Model repository written by cptr-export."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder (default: deploy/ next to the repository)."),
    image: str = typer.Option(
        "cptr-triton",
        "--image",
        help="Image repository of the CPTR Triton image (your registry), e.g. registry.example.com/cptr/cptr-triton.",
    ),
    image_tag: str | None = typer.Option(None, "--image-tag", help="Its tag (default: <cptr version>-<triton tag>)."),
    triton_tag: str | None = typer.Option(
        None, "--triton-tag", help="NGC tritonserver tag the image is built on (default: 24.10-py3, Triton 2.51)."
    ),
    model_uri: str | None = typer.Option(
        None,
        "--model-uri",
        help="Where the cluster reads the repository: pvc://CLAIM/PATH, s3://BUCKET/PATH or gs://BUCKET/PATH (default: pvc://cptr-models/<repository folder>).",
    ),
    gpus: int | None = typer.Option(None, "--gpus", min=0, help="GPUs per replica (default: 1 if a model runs on a GPU, else 0)."),
    name: str | None = typer.Option(None, "--name", help="Name of the KServe InferenceService (default: cptr-<style>)."),
    namespace: str = typer.Option("default", "--namespace", "-n", help="Namespace of the InferenceService (and its Prometheus query)."),
    prometheus_url: str = typer.Option(
        "http://prometheus-server.monitoring.svc", "--prometheus-url", help="Prometheus as seen from the cluster (adapter and KEDA)."
    ),
    min_replicas: int = typer.Option(1, "--min-replicas", min=1, help="Fewest replicas the autoscaler keeps."),
    max_replicas: int = typer.Option(4, "--max-replicas", min=1, help="Most replicas the autoscaler starts."),
    target_queue_ms: float = typer.Option(
        50.0, "--target-queue-ms", help="Scale out while Triton's mean queue time per request is above this."
    ),
    exit_timeout: int = typer.Option(
        30, "--exit-timeout-secs", min=0, help="Triton's --exit-timeout-secs; the termination grace period is longer."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> None:
    """Write a Helm chart, a KServe InferenceService, the Prometheus adapter rule and a Dockerfile for a repository.

    Everything is derived from the repository's own files: model names, flavour, GPU use, image. The
    chart runs NGC's Triton with CPTR installed (the repository's Python-backend models import it),
    probes /v2/health/live and /v2/health/ready, and scales on Triton's queue time per request.

    Examples:

      cptr-export --style demo --out triton_repo
      cptr deploy k8s triton_repo --image registry.example.com/cptr/cptr-triton
      cptr deploy k8s triton_repo --model-uri s3://my-bucket/cptr/demo \\
          --max-replicas 8

    Then follow deploy/README.md: build and push the image, copy the repository, helm install.
    """

    opts = DeployOptions(
        repository=repository, out=out, image=image, image_tag=image_tag, triton_tag=triton_tag, model_uri=model_uri, gpus=gpus,
        name=name, namespace=namespace, prometheus_url=prometheus_url, min_replicas=min_replicas, max_replicas=max_replicas,
        target_queue_ms=target_queue_ms, exit_timeout_s=exit_timeout,
    )  # fmt: skip
    try:
        res = write_k8s(opts)
    except (DeployError, RepositoryError) as e:
        typer.secho(f"cptr deploy k8s: error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    for note in res.notes:
        typer.secho(f"note: {note}", fg=typer.colors.YELLOW, err=True)
    if not quiet:
        info = res.repository
        typer.echo(f"wrote {res.out}/ for style {info.style!r} ({info.flavour} flavour, serving {', '.join(info.ensembles)}):")
        for path in (res.chart, *(p for p in res.files if res.chart not in p.parents)):
            typer.echo(f"  {path.relative_to(res.out.parent)}")
        typer.echo(f"image: {res.image}; autoscaling metric: {res.metric_name}; next steps: {res.out / 'README.md'}")
