"""``cptr-train mapper``: the options of :class:`~cptr.training.jobs_options.MapperJob` in,
:func:`cptr.training.mapper_train.run_mapper_job` out.

Only typer and the job's dataclass are imported at module level (``cptr-train --help`` stays fast).
"""

from __future__ import annotations

from cptr.options import options_command
from cptr.training.job_cli import run_job
from cptr.training.jobs_options import MapperJob

MAPPER_EXAMPLES = """Examples:

  cptr-train mapper --style webtoon --prompt "a really angry face" --clip-weights ViT-B-32.pt --arcface-weights model_ir_se50.pth --out runs/angry

  cptr-train mapper --generator ffhq256.pt --prompt "a smiling face" --name smile --clip-weights ViT-B-32.pt --lambda-id 0 --steps 2000

  cptr-train mapper --style webtoon --images aligned_faces/ --prompt "surprised" --clip-weights ViT-B-32.pt --arcface-weights model_ir_se50.pth

  cptr-train mapper --generator runs/source.pt --prompt "a smiling face" --name smile --critic smile --lambda-id 0 --steps 600
"""


@options_command(MapperJob)
def mapper_command(job: MapperJob) -> None:
    """Train a StyleCLIP levels mapper for a text prompt (CLIP + latent L2 + ArcFace identity losses)."""
    from cptr.training.mapper_train import run_mapper_job  # torch: only when this runs (the module is imported without it)

    run_job(run_mapper_job, job)


MAPPER_HELP = f"{mapper_command.__doc__}\n\n{MAPPER_EXAMPLES}"
