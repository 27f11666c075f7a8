"""Shared request handling for the Python-backend models.

Every input is checked against the model's own config (dtype, shape, batch size, finite values);
every failure becomes a per-request error ``[code] message`` and never reaches the stub, so one
bad request cannot take the model (or its neighbours in a dynamic batch) down. Output dtypes are
read from the config, so each is written in exactly one place: the repository writer.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from cptr.contracts import spec_from_config
from cptr.serving.errors import BAD_REQUEST, INTERNAL, RequestError, error_code, format_error
from cptr.serving.stages import check_tensor

Arrays = dict[str, np.ndarray]


class StageModel:
    """Base class: subclasses implement :meth:`compute` over one batch of checked inputs.

    ``merge_requests = True`` runs all valid requests of a dynamic batch as one concatenated
    batch (falling back to one request at a time if that fails, to isolate the culprit).
    ``fans_out = True`` lets a model answer with another batch size than it was asked with (all of its
    outputs still share one), as preprocess does: one row per face (see FACE_ROWS in cptr.contracts).
    """

    merge_requests = False
    fans_out = False  # True: the outputs' batch may differ from the inputs' (preprocess: one row per face, not per photo)

    def initialize(self, args: dict[str, str]) -> None:
        self.model_config = json.loads(args["model_config"])
        self.model_name = args["model_name"]
        self.model_dir = Path(args["model_repository"]) / args["model_version"]
        self.batch_max = max(int(self.model_config.get("max_batch_size", 0)), 1)
        self.inputs = [spec_from_config(e) for e in self.model_config["input"]]
        self.optional = {e["name"] for e in self.model_config["input"] if e.get("optional")}
        self.output_dtypes = {
            e["name"]: pb_utils.triton_string_to_numpy(pb_utils.get_output_config_by_name(self.model_config, e["name"])["data_type"])
            for e in self.model_config["output"]
        }
        self.params = {k: v["string_value"] for k, v in self.model_config.get("parameters", {}).items()}
        self.setup()

    def setup(self) -> None:
        """Load what the model needs (sessions, parameters)."""

    def param(self, key: str) -> str:
        if key not in self.params:
            raise RuntimeError(f"model {self.model_name}: config.pbtxt lacks parameter '{key}'; rebuild the repository with cptr-export")
        return self.params[key]

    def compute(self, inputs: Arrays) -> Arrays:
        raise NotImplementedError

    # --- request plumbing -------------------------------------------------------------------

    def _read(self, request: Any) -> Arrays:
        arrays: Arrays = {}
        batch = None
        for spec in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, spec.name)
            if tensor is None:
                if spec.name in self.optional:
                    continue
                raise RequestError(BAD_REQUEST, f"missing input '{spec.name}'")
            arr = check_tensor(tensor.as_numpy(), spec, self.batch_max)
            if batch is not None and arr.shape[0] != batch:
                raise RequestError(BAD_REQUEST, f"input '{spec.name}' has batch size {arr.shape[0]}, the other inputs {batch}")
            batch = arr.shape[0]
            arrays[spec.name] = arr
        return arrays

    def _run(self, inputs: Arrays) -> Arrays:
        outputs = self.compute(inputs)
        n = next(iter(outputs.values())).shape[0] if self.fans_out else next(iter(inputs.values())).shape[0]
        for name, arr in outputs.items():
            if arr.shape[0] != n:
                raise RuntimeError(f"output '{name}' has batch {arr.shape[0]}, expected {n}")
        return outputs

    def _error(self, exc: BaseException) -> Any:
        code = error_code(exc)
        if code == INTERNAL:
            pb_utils.Logger.log_error(f"{self.model_name}: {''.join(traceback.format_exception(exc))}")
            message = f"model {self.model_name} failed: {type(exc).__name__}: {exc}"
        else:
            message = str(exc)
        status = getattr(pb_utils.TritonError, "INTERNAL" if code == INTERNAL else "INVALID_ARG", None)
        error = (
            pb_utils.TritonError(format_error(code, message))
            if status is None
            else pb_utils.TritonError(format_error(code, message), status)
        )
        return pb_utils.InferenceResponse(output_tensors=[], error=error)

    def _response(self, outputs: Arrays) -> Any:
        tensors = []
        for name, dtype in self.output_dtypes.items():
            arr = outputs[name]
            arr = arr.astype(dtype, copy=False) if dtype != np.object_ else arr.astype(np.object_)
            tensors.append(pb_utils.Tensor(name, np.ascontiguousarray(arr)))
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def execute(self, requests: list[Any]) -> list[Any]:
        results: list[Arrays | BaseException | None] = []
        for request in requests:
            try:
                results.append(self._read(request))
            except Exception as e:  # noqa: BLE001 - every failure becomes this request's error
                results.append(e)
        todo = [i for i, r in enumerate(results) if isinstance(r, dict)]
        inputs = {i: results[i] for i in todo}
        done: dict[int, Arrays | BaseException] = {}
        if self.merge_requests and len(todo) > 1 and len({frozenset(inputs[i]) for i in todo}) == 1:
            try:
                names = list(inputs[todo[0]])
                merged = self._run({k: np.concatenate([inputs[i][k] for i in todo]) for k in names})
                start = 0
                for i in todo:
                    n = inputs[i][names[0]].shape[0]
                    done[i] = {k: v[start : start + n] for k, v in merged.items()}
                    start += n
            except Exception:  # noqa: BLE001 - retry one by one to find the request that fails
                done = {}
        for i in todo:
            if i not in done:
                try:
                    done[i] = self._run(inputs[i])
                except Exception as e:  # noqa: BLE001
                    done[i] = e
        responses = []
        for i, r in enumerate(results):
            out = done.get(i, r)
            try:
                responses.append(self._error(out) if isinstance(out, BaseException) else self._response(out))
            except Exception as e:  # noqa: BLE001 - e.g. an output of the wrong dtype
                responses.append(self._error(e))
        return responses

    def finalize(self) -> None:
        pass
