"""``style_mix_<style>``: w, w of the mix seed, crossover -> W+ (see cptr.serving.stages.mix_latents)."""

from __future__ import annotations

from cptr.contracts import MIX
from cptr.serving.models.base import Arrays, StageModel
from cptr.serving.stages import mix_latents


class TritonPythonModel(StageModel):
    merge_requests = True

    def setup(self) -> None:
        self.n_latent = int(self.param("n_latent"))
        self.w_name, self.w_mix_name, self.out_name = self.param("w_input"), self.param("w_mix_input"), self.param("w_plus_output")

    def compute(self, inputs: Arrays) -> Arrays:
        return {self.out_name: mix_latents(inputs[self.w_name], inputs[self.w_mix_name], inputs[MIX.name], self.n_latent)}
