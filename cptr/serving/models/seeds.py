"""``seeds_<style>``: seed and mix seed -> z for the mapping network (see cptr.serving.stages)."""

from __future__ import annotations

from cptr.contracts import MIX, SEED
from cptr.serving.models.base import Arrays, StageModel
from cptr.serving.stages import check_mix, check_seeds, seed_latents


class TritonPythonModel(StageModel):
    merge_requests = True

    def setup(self) -> None:
        self.style_dim = int(self.param("style_dim"))
        self.z_name, self.z_mix_name = self.param("z_output"), self.param("z_mix_output")

    def compute(self, inputs: Arrays) -> Arrays:
        seeds = check_seeds(inputs[SEED.name])
        mix = check_mix(inputs[MIX.name])
        return {self.z_name: seed_latents(seeds, self.style_dim), self.z_mix_name: seed_latents(mix[:, 0], self.style_dim)}
