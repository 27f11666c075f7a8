"""Training: FreezeSG fine-tuning (``cptr-train finetune``), data preparation, and the other trainers.

Modules: ``finetune`` (the loop), ``freeze`` (what trains, FreezeSG latents), ``losses``,
``augment`` (ADA), ``synthesis`` (generator intermediates), ``data``, ``checkpointing``, ``rng``,
``distributed`` (torchrun), ``monitor`` (logs, samples), ``config``, ``cli``.
"""
