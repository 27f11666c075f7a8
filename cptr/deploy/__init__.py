"""Past one machine: the exported Triton repository on Kubernetes (Helm chart, KServe), autoscaled on Triton's metrics.

``write_k8s(DeployOptions(repository=...))`` is what ``cptr deploy k8s`` runs; see :mod:`cptr.deploy.k8s`.
"""

from cptr.deploy.k8s import DeployError, DeployOptions, DeployResult, write_k8s
from cptr.deploy.repository import RepositoryError, RepositoryInfo, read_repository

__all__ = ["DeployError", "DeployOptions", "DeployResult", "RepositoryError", "RepositoryInfo", "read_repository", "write_k8s"]
