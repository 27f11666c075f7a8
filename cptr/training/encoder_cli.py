"""``cptr-train encoder``: the options of :class:`~cptr.training.jobs_options.EncoderJob` in,
:func:`cptr.training.encoder_train.run_encoder_job` out.

Only typer and the job's dataclass are imported at module level (``cptr-train --help`` stays fast).
"""

from __future__ import annotations

from cptr.options import options_command
from cptr.training.job_cli import run_job
from cptr.training.jobs_options import EncoderJob

ENCODER_EXAMPLES = """Examples:

  cptr-train encoder --style webtoon --out runs/encoder --steps 20000

  cptr-train encoder --generator ffhq256.pt --images aligned_faces/ --arcface-weights model_ir_se50.pth --width full

  cptr-train encoder --style demo --width small --steps 300 --out runs/demo_encoder
"""


@options_command(EncoderJob)
def encoder_command(job: EncoderJob) -> None:
    """Train an image -> W+ encoder on the generator's own samples (latent + pixel [+ identity, perceptual] losses)."""
    from cptr.training.encoder_train import run_encoder_job  # torch: only when this runs (the module is imported without it)

    run_job(run_encoder_job, job)


ENCODER_HELP = f"{encoder_command.__doc__}\n\n{ENCODER_EXAMPLES}"
