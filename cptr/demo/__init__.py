"""The embedded ``demo`` style: models CPTR trained itself, shipped in the package.

No FFHQ, cartoon data set, CLIP or ArcFace weights can be had on a fresh machine, so the demo's
models were trained by :mod:`cptr.demo.train` (``python -m cptr.demo.train``) on procedural faces
(:mod:`cptr.data.faces`), with CPTR's own commands:

* ``source.pt``: a 64 px StyleGAN2 trained from scratch on photo-domain renders (``cptr-train source``);
* ``target.pt``: its FreezeSG fine-tune on cartoon-domain renders with the structure loss
  (``cptr-train finetune``);
* ``encoder.pt``: an image -> W+ encoder for the source (``cptr-train encoder``);
* ``mapper_smile.pt``: a levels mapper for "a smiling face" (``cptr-train mapper``) whose text loss is
  a stand-in, the face critic's smile score (:class:`cptr.data.critic.AttributeLoss`).

``MODEL_CARD.md`` beside them says how they were made, what they score, their limits and hashes.
"""

from __future__ import annotations

from cptr.styles.builtin import (  # noqa: F401 - the demo's files have their one home in the style registry
    ASSET_DIR,
    CARD,
    DEMO_NAME,
    ENCODER,
    MAPPERS,
    SERVED_ALPHA,
    SERVED_SWAP_RES,
    SOURCE,
    TARGET,
    TRAIN_HINT,
    demo_encoder,
    demo_generators,
    missing_assets,
)
