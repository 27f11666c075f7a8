"""Fast checks of the client helpers and the serving arithmetic (no server; see test_serving.py for that)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from cptr import contracts as C
from cptr.client import encode_image, parse_mix, parse_seeds
from cptr.client import errors as client_errors
from cptr.client.client import ModelInfo, map_error
from cptr.serving import errors, stages


def test_parse_seeds() -> None:
    assert parse_seeds("1-4,9, 12") == [1, 2, 3, 4, 9, 12]
    assert parse_seeds(7) == [7]
    assert parse_seeds(range(3)) == [0, 1, 2]
    for bad in ("", "a-b", "-3", [2**63]):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_parse_mix() -> None:
    assert parse_mix("42:6") == (42, 6)
    assert parse_mix((1, 0)) == (1, 0)
    assert parse_mix(None) is None
    for bad in ("42", "x:1", "1:-1", (-1, 3)):
        with pytest.raises(ValueError):
            parse_mix(bad)


def test_encode_image_inputs(tmp_path) -> None:
    arr = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    for image in (arr, Image.fromarray(arr)):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_image(image)))), arr)
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    assert encode_image(path) == b"abc" and encode_image(str(path)) == b"abc" and encode_image(b"xyz") == b"xyz"
    with pytest.raises(ValueError, match="uint8"):
        encode_image(arr.astype(np.float32))
    with pytest.raises(TypeError):
        encode_image(3)  # type: ignore[arg-type]


def test_error_prefix_round_trip() -> None:
    wire = "in ensemble 'cartoonize_demo', " + errors.format_error(errors.NO_FACE, "no face found in the 64x64 photo")
    assert errors.parse_error(wire) == (errors.NO_FACE, "no face found in the 64x64 photo")
    assert errors.parse_error("plain text") == (None, "plain text")
    with pytest.raises(ValueError):
        errors.RequestError("nonsense", "x")


def test_align_errors_map_to_codes() -> None:
    align = pytest.importorskip("cptr.align")
    assert errors.error_code(align.NoFaceError("x")) == errors.NO_FACE
    assert errors.error_code(align.FaceTooSmallError("x")) == errors.FACE_TOO_SMALL
    assert errors.error_code(align.ImageTooLargeError("x")) == errors.IMAGE_TOO_LARGE
    assert errors.error_code(align.BadImageError("x")) == errors.BAD_IMAGE
    assert errors.error_code(KeyError("x")) == errors.INTERNAL


@pytest.mark.parametrize(
    ("message", "status", "cls"),
    [
        ("in ensemble 'e', [no_face] none", "StatusCode.INVALID_ARGUMENT", client_errors.NoFaceError),
        ("[face_too_small] tiny", "400", client_errors.FaceTooSmallError),
        ("[bad_image] junk", "400", client_errors.BadImageError),
        ("[image_too_large] big", "400", client_errors.ImageTooLargeError),
        ("[bad_request] seed", "400", client_errors.BadRequestError),
        ("[internal] boom", "500", client_errors.ServerError),
        ("Request for unknown model: 'generate_x' is not found", "StatusCode.NOT_FOUND", client_errors.UnknownStyleError),
        ("unexpected shape for input 'seed'", "StatusCode.INVALID_ARGUMENT", client_errors.BadRequestError),
        ("failed to connect to all addresses", "StatusCode.UNAVAILABLE", client_errors.ServerUnavailableError),
        ("Deadline Exceeded", "StatusCode.DEADLINE_EXCEEDED", client_errors.RequestTimeoutError),
        ("something odd", "StatusCode.INTERNAL", client_errors.ServerError),
    ],
)
def test_map_error(message: str, status: str, cls: type) -> None:
    from tritonclient.utils import InferenceServerException

    err = map_error(InferenceServerException(message, status=status), "generate_x", "host:1")
    assert type(err) is cls
    assert map_error(ConnectionRefusedError(111, "refused"), "m", "h").__class__ is client_errors.ServerUnavailableError
    assert map_error(TimeoutError(), "m", "h").__class__ is client_errors.RequestTimeoutError


def test_seed_latents_contract() -> None:
    z = stages.seed_latents([5, 2**62], 16)
    assert z.dtype == np.float32 and z.shape == (2, 16)
    assert np.array_equal(z[0], np.random.default_rng(5).normal(size=16).astype(np.float32))
    assert np.array_equal(stages.seed_latents([5], 16)[0], z[0])  # independent of the batch
    with pytest.raises(errors.RequestError, match="must be in"):
        stages.seed_latents([-1], 16)


def test_mix_latents() -> None:
    w, w2 = np.zeros((2, 4), np.float32), np.ones((2, 4), np.float32)
    out = stages.mix_latents(w, w2, np.array([[9, 2], [9, 0]]), n_latent=5)
    assert out.shape == (2, 5, 4)
    assert out[0, :2].sum() == 0 and (out[0, 2:] == 1).all() and out[1].sum() == 0
    assert stages.mix_latents(w, w2, np.array([[9, 7], [9, 5]]), 5).sum() == 0
    with pytest.raises(errors.RequestError, match="crossover"):
        stages.mix_latents(w, w2, np.array([[9, -1], [9, 0]]), 5)


def test_check_tensor() -> None:
    spec = C.w_plus(3, 4)
    ok = np.zeros((2, 3, 4), np.float32)
    assert stages.check_tensor(ok, spec, 8) is ok
    for bad, text in (
        (ok.astype(np.float64), "must be FP32"),
        (ok[:, :2], "shape"),
        (np.zeros((9, 3, 4), np.float32), "batch size 9"),
        (np.full((1, 3, 4), np.inf, np.float32), "NaN or infinite"),
    ):
        with pytest.raises(errors.RequestError, match=text):
            stages.check_tensor(bad, spec, 8)
    stages.check_tensor(np.array([[b"x"]], dtype=object), C.IMAGE_BYTES, 1)


def test_to_uint8_matches_imaging() -> None:
    from cptr.imaging import to_uint8

    x = torch.linspace(-1.3, 1.3, 3 * 8 * 8).reshape(1, 3, 8, 8)
    assert np.array_equal(stages.to_uint8(x[0].numpy()), to_uint8(x)[0])


def test_model_names() -> None:
    assert C.cartoonize_model("demo") == "cartoonize_demo"
    assert C.cartoonize_model("demo", "angry") == "cartoonize_demo_angry"
    assert C.generate_model("demo") == "generate_demo" and C.model_name(C.MAPPER, "demo", "a") == "mapper_demo_a"
    for bad in ("", "a b", "../x", "x" * 65):
        with pytest.raises(ValueError, match="Triton model name"):
            C.cartoonize_model(bad)


def test_model_info_from_grpc_and_http_configs() -> None:
    grpc_style = {"name": "g", "max_batch_size": 8, "input": [{"name": "seed", "data_type": "TYPE_INT64", "dims": ["1"]}],
                  "output": [{"name": "output_bytes", "data_type": "TYPE_STRING", "dims": ["1"]}]}  # fmt: skip
    info = ModelInfo.from_config(grpc_style)
    assert info.max_batch_size == 8 and info.inputs["seed"] == C.SEED and info.outputs["output_bytes"] == C.OUTPUT_BYTES


def test_transform_refers_to_the_256_crop_at_any_encoder_size() -> None:
    pytest.importorskip("cptr.align")
    from skimage import data

    from cptr.imaging import encode_png

    photo_bytes = encode_png(data.astronaut())
    photo, crop256, m256 = stages.decode_and_align(photo_bytes)
    _, crop128, m128 = stages.decode_and_align(photo_bytes, 128)
    assert crop256.shape == (3, 256, 256) and crop128.shape == (3, 128, 128) and photo.shape == (512, 512, 3)
    assert crop256.dtype == np.float32 and -1 <= crop256.min() and crop256.max() <= 1
    np.testing.assert_allclose(m128, m256, atol=1e-4)


def test_postprocess_refuses_oversized_images() -> None:
    with pytest.raises(errors.RequestError, match="pixels per side"):
        stages.to_uint8(np.zeros((3, 5000, 8), np.float32))
    pngs, composites = stages.render_faces(np.zeros((1, 3, 8, 8), np.float32))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(pngs[0, 0]))), np.full((8, 8, 3), 128, np.uint8))
    assert composites[0, 0] == b""  # no photo: no composite
    with pytest.raises(errors.RequestError, match="paste_back=1 needs"):
        stages.render_faces(np.zeros((1, 3, 8, 8), np.float32), paste=np.ones((1, 1), np.int32))


def test_face_rows_group_faces_by_photo() -> None:
    """FACE_ROWS (cptr.contracts): a photo's bytes in the row of its first face, empty in its other faces' rows. Two
    photos of two and one faces: each composite lands in its photo's first row, with that photo's faces pasted back
    (grey for the grey photo), and nothing in the other rows. Fails if postprocess pastes a face into the wrong photo."""
    from cptr.imaging import encode_png

    colour, grey = np.full((40, 60, 3), (200, 30, 30), np.uint8), np.full((40, 60, 3), 90, np.uint8)
    grey_png = io.BytesIO()
    Image.fromarray(grey[..., 0]).save(grey_png, format="PNG")
    photos = np.array([[encode_png(colour)], [b""], [grey_png.getvalue()]], dtype=object)
    assert stages.photo_rows(photos) == [(0, 2), (2, 3)]
    images = np.stack([np.full((3, 16, 16), v, np.float32) for v in (1.0, -1.0, 0.0)])
    images[2, 1] = 1.0  # a green face: in the grey photo it must come out grey
    # each face lands on a 10 px square: crop pixel (x, y) of the 256 px crop -> photo (x0 + x * 10/256, y0 + ...)
    transforms = np.stack([np.array([[10 / 256, 0, x0], [0, 10 / 256, 10], [0, 0, 1]], np.float32) for x0 in (5, 35, 25)])
    pngs, comp = stages.render_faces(images, photos, transforms, np.ones((3, 1), np.int32))
    assert comp[1, 0] == b"" and comp[0, 0] and comp[2, 0]
    first, second = (np.asarray(Image.open(io.BytesIO(c))) for c in (comp[0, 0], comp[2, 0]))
    assert first.shape == second.shape == (40, 60, 3)
    assert (first[15, 10] > 200).all() and (first[15, 40] < 60).all()  # the white face at x 5..15, the black one at 35..45
    assert np.array_equal(first[35:, :], colour[35:, :])  # below the faces: the photo as it was
    face = np.asarray(Image.open(io.BytesIO(pngs[2, 0])))
    assert (face[..., 0] == face[..., 1]).all() and (second[..., 0] == second[..., 2]).all()  # grey photo: grey cartoon
    with pytest.raises(errors.RequestError, match="first row of image_bytes is empty"):
        stages.photo_rows(np.array([[b""], [b"x"]], dtype=object))


@pytest.mark.parametrize("asynchronous", [False, True], ids=["blocking", "asyncio"])
def test_both_clients_drive_a_plan_alike(asynchronous: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each step's answer goes back into the plan, a failed step's exception is thrown into it, gathered plans
    answer in order, and the plan's return value is what the client returns."""
    import asyncio

    from cptr.client.client import AsyncCartoonClient, CartoonClient, _Gather, _Request, _Sleep

    served = {"a": 1, "b": 2}

    def lookup(r: _Request) -> int:
        return served[r.model]  # KeyError for a model the fake server does not serve

    def one(model: str):
        return (yield _Request("config", model=model))

    def plan():
        slept = yield _Sleep(0)
        got = yield _Request("config", model="a")
        try:
            yield _Request("config", model="missing")
            missing = None
        except KeyError as e:
            missing = e.args[0]
        both = yield _Gather([one("b"), one("a")], concurrency=2)
        return slept, got, missing, both

    want = (None, 1, "missing", [2, 1])
    if asynchronous:
        client = AsyncCartoonClient(retries=0)

        async def request(_client, r):
            return lookup(r)

        monkeypatch.setattr(client, "_request", request)
        monkeypatch.setattr(client, "_client", lambda: None)
        assert asyncio.run(client._run(plan())) == want
    else:
        client = CartoonClient(retries=0)
        monkeypatch.setattr(client, "_request", lambda _client, r: lookup(r))
        monkeypatch.setattr(client, "_client", lambda: None)
        assert client._run(plan()) == want
        client.close()
