"""Progress of step-by-step work (the short trainers, the latent optimiser, the renderer)."""

from __future__ import annotations

from collections.abc import Callable

from tqdm import tqdm


class StepProgress:
    """Per-step reporting for the short trainers: a tqdm bar with the latest losses (only when
    ``enabled``) and an optional ``callback(step, losses)``. Use as a context manager."""

    def __init__(self, total: int, desc: str, enabled: bool, callback: Callable[[int, dict[str, float]], None] | None = None):
        self.callback = callback
        self.bar = None
        if enabled:
            self.bar = tqdm(total=total, desc=desc, unit="step")

    def step(self, step: int, losses: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in losses.items()})
        if self.callback is not None:
            self.callback(step, losses)

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
