"""The Open Inference Protocol (KServe v2, Triton's HTTP/REST API) beside `/predict`.

Clients such as `tritonclient.http` work unchanged. One model, named by its card, with the
line-up's versions; the input `photo` is a BYTES tensor of shape [N] (each element one encoded
photo); the outputs are `probabilities` FP32 [N, 2] (cat, dog), `pet_score` FP32 [N], `label`
BYTES [N] and `prediction_id` BYTES [N] (for feedback). Both the JSON tensor form (BYTES
elements as base64 strings, since JSON cannot carry raw bytes) and the binary tensor data
extension (`Inference-Header-Content-Length`) are accepted and answered. Every photo inferred
is counted, stored and shadowed exactly as with `/predict`.

Errors follow the protocol: a JSON body `{"error": "..."}` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import struct
from collections import Counter
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.common.sizes import readable_bytes
from services.inference import metrics
from services.inference.answering import Answered, Photo, answer, record
from services.inference.lineup import LineupManager
from services.inference.predictor import Predictor
from services.inference.settings import Settings

INPUT = "photo"
HEADER_LENGTH = "inference-header-content-length"
_BYTE_COUNT = re.compile(r"[0-9]{1,15}")
# Values a request needs besides one per photo: shape, outputs, parameters and their names.
_MAX_OTHER_VALUES = 1000
# The request id comes back in the answer, whose size stays bounded.
_MAX_ID_CHARACTERS = 256
OUTPUTS = {
    "probabilities": ("FP32", 2),
    "pet_score": ("FP32", None),
    "label": ("BYTES", None),
    "prediction_id": ("BYTES", None),
}


class ProtocolError(Exception):
    """A request the protocol refuses; answered as `{"error": ...}`.

    `reason` labels `cv_images_rejected_total` when an inference request is refused; None
    when the refusal was already counted (a photo the decoder refused).
    """

    def __init__(
        self, status: int, message: str, reason: str | None = "InvalidInferRequest"
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


class TensorIn(BaseModel):
    """One input tensor of an inference request."""

    model_config = ConfigDict(extra="allow")

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    data: list[Any] | None = None


class OutputWanted(BaseModel):
    """One requested output."""

    model_config = ConfigDict(extra="allow")

    name: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class InferRequest(BaseModel):
    """`POST .../infer`."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: list[TensorIn]
    outputs: list[OutputWanted] | None = None


def _manager(request: Request) -> LineupManager:
    manager: LineupManager = request.app.state.lineup
    return manager


def _model_name(request: Request) -> str:
    return _manager(request).lineup.active.classifier.card.name


def _predictor(request: Request, name: str, version: str | None) -> Predictor | None:
    """The predictor a path names (None: the line-up decides); ProtocolError when unknown."""
    if name != _model_name(request):
        raise ProtocolError(
            404,
            f"unknown model {name!r}; this server serves {_model_name(request)!r}",
            "UnknownModel",
        )
    if version is None:
        return None
    active = _manager(request).lineup.active
    # Only the active version answers by name: a canary is judged on the share the line-up
    # draws for it, and a shadow's answers are never served. The same words for every other
    # version, so that they tell nobody which ones exist.
    if version != active.version:
        raise ProtocolError(
            404,
            f"model {name!r} answers by name only as its active version {active.version!r}",
            "UnknownModel",
        )
    return active


def _metadata(request: Request, name: str, version: str | None) -> dict[str, Any]:
    _predictor(request, name, version)
    return {
        "name": name,
        # The one version a caller may name (a canary or shadow is no public version).
        "versions": [_manager(request).lineup.active.version],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": INPUT, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": output, "datatype": datatype, "shape": [-1, width] if width else [-1]}
            for output, (datatype, width) in OUTPUTS.items()
        ],
    }


# Triton's names for the protocol's datatypes, in model configurations.
_CONFIG_TYPES = {"BYTES": "TYPE_STRING", "FP32": "TYPE_FP32"}


def _config(request: Request, name: str, version: str | None) -> dict[str, Any]:
    """The model configuration (Triton's extension), from the same facts as the metadata.

    `max_batch_size` 0: the batch is the first dimension of every tensor, not implied.
    """
    metadata = _metadata(request, name, version)
    settings: Settings = request.app.state.settings

    def tensors(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "name": item["name"],
                "data_type": _CONFIG_TYPES[item["datatype"]],
                "dims": item["shape"],
            }
            for item in items
        ]

    return {
        "name": name,
        "platform": metadata["platform"],
        "backend": "onnxruntime",
        "max_batch_size": 0,
        "version_policy": {"specific": {"versions": metadata["versions"]}},
        "input": tensors(metadata["inputs"]),
        "output": tensors(metadata["outputs"]),
        "parameters": {
            "predict_max_photos": {"string_value": str(settings.predict_max_photos)},
            "max_upload_bytes": {"string_value": str(settings.max_upload_bytes)},
        },
    }


def _split_body(
    body: bytes, header_length: str | None, settings: Settings
) -> tuple[dict[str, Any], bytes]:
    """The JSON header and the binary part of a request (binary tensor data extension)."""
    if header_length is None:
        size = len(body)
    # ASCII digits only: str.isdigit() also accepts "²", which int() then refuses.
    elif _BYTE_COUNT.fullmatch(header_length) and int(header_length) <= len(body):
        size = int(header_length)
    else:
        raise ProtocolError(400, f"{HEADER_LENGTH} must be a byte count within the body")
    # The JSON parser holds the interpreter lock for the whole document, in a thread too: what
    # it may take is bounded before it starts. Every value after a container's first follows a
    # comma, and a request has one value per photo and a few dozen more.
    separators = body.count(b",", 0, size)
    if separators > settings.predict_max_photos + _MAX_OTHER_VALUES:
        raise ProtocolError(400, f"the request holds {separators} JSON values, far past its need")
    try:
        header = json.loads(body[:size])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(400, f"the request is not valid JSON: {error}") from None
    except RecursionError:  # a body of nothing but "[[[[..." exhausts the parser's stack
        raise ProtocolError(400, "the request's JSON is nested too deeply") from None
    except ValueError as error:  # a number of more digits than Python converts
        raise ProtocolError(400, f"the request's JSON holds an unreadable value: {error}") from None
    if not isinstance(header, dict):
        raise ProtocolError(400, "the request must be a JSON object")
    return header, body[size:]


def _unpack_bytes(raw: bytes, count: int) -> list[bytes]:
    """BYTES tensor elements from their binary form: 4-byte little-endian length + bytes."""
    elements: list[bytes] = []
    offset = 0
    # No further than the shape says: past it the data is refused, not read.
    for _ in range(count):
        if offset + 4 > len(raw):
            raise ProtocolError(
                400, f"shape says {count} photos, the binary data holds {len(elements)}"
            )
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise ProtocolError(400, "a BYTES element is longer than the data sent")
        elements.append(raw[offset : offset + length])
        offset += length
    if offset != len(raw):
        raise ProtocolError(400, f"shape says {count} photos, the binary data holds more")
    return elements


def _photos(tensor: TensorIn, binary: bytes, settings: Settings) -> list[bytes]:
    if tensor.name != INPUT:
        raise ProtocolError(400, f"unknown input {tensor.name!r}; the input is {INPUT!r}")
    if tensor.datatype != "BYTES":
        raise ProtocolError(
            400, f"input {INPUT!r} is BYTES (encoded photos), not {tensor.datatype}"
        )
    if len(tensor.shape) != 1 or tensor.shape[0] < 1:
        raise ProtocolError(400, f"input {INPUT!r} has shape [N]: one encoded photo per element")
    count, limit = tensor.shape[0], settings.predict_max_photos
    if count > limit:
        raise ProtocolError(
            400, f"at most {limit} photos per request (PREDICT_MAX_PHOTOS)", "TooManyPhotos"
        )
    if tensor.data is None:
        size = tensor.parameters.get("binary_data_size")
        # Not isinstance: `true` would pass as 1.
        if type(size) is not int or size != len(binary):
            raise ProtocolError(400, "binary_data_size must give the size of the binary data sent")
        photos = _unpack_bytes(binary, count)
    elif len(tensor.data) != count or not all(isinstance(item, str) for item in tensor.data):
        raise ProtocolError(400, f"data must hold {count} base64 strings (one per photo)")
    else:
        try:
            photos = [base64.b64decode(item, validate=True) for item in tensor.data]
        except (binascii.Error, ValueError):
            raise ProtocolError(400, "a photo in data is not valid base64") from None
    # The same per-photo limit as /predict's files, whichever form carried the photo.
    if any(len(photo) > settings.max_upload_bytes for photo in photos):
        raise ProtocolError(
            413, f"a photo exceeds {readable_bytes(settings.max_upload_bytes)}", "UploadTooLarge"
        )
    return photos


def _pack_bytes(values: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(value)) + value for value in values)


def _outputs(answered: Answered) -> dict[str, tuple[list[int], Any, bytes]]:
    """Each output's shape, JSON data and binary form."""
    probabilities = np.array(
        [[r.probabilities["cat"], r.probabilities["dog"]] for _, r in answered], dtype="<f4"
    )
    pet_score = np.array(
        [r.pet_score if r.pet_score is not None else np.nan for _, r in answered], dtype="<f4"
    )
    labels = [r.label.encode() for _, r in answered]
    ids = [str(prediction_id).encode() for prediction_id, _ in answered]
    count = len(answered)
    return {
        "probabilities": ([count, 2], probabilities.ravel().tolist(), probabilities.tobytes()),
        "pet_score": (
            [count],
            [None if np.isnan(v) else float(v) for v in pet_score],
            pet_score.tobytes(),
        ),
        "label": ([count], [v.decode() for v in labels], _pack_bytes(labels)),
        "prediction_id": ([count], [v.decode() for v in ids], _pack_bytes(ids)),
    }


def _response(
    request_body: InferRequest, name: str, answered: Answered, active_version: str
) -> Response:
    wanted = request_body.outputs or [OutputWanted(name=output) for output in OUTPUTS]
    default_binary = bool(request_body.parameters.get("binary_data_output", False))
    produced = _outputs(answered)
    versions = [result.model_version for _, result in answered]
    header_outputs, binary = [], []
    for item in wanted:
        shape, data, raw = produced[item.name]
        datatype = OUTPUTS[item.name][0]
        entry: dict[str, Any] = {"name": item.name, "datatype": datatype, "shape": shape}
        if item.parameters.get("binary_data", default_binary):
            entry["parameters"] = {"binary_data_size": len(raw)}
            binary.append(raw)
        else:
            entry["data"] = data
        header_outputs.append(entry)
    header: dict[str, Any] = {
        "model_name": name,
        "model_version": versions[0] if len(set(versions)) == 1 else active_version,
        "outputs": header_outputs,
        "parameters": {"answered_by": ",".join(versions)},
    }
    if request_body.id is not None:
        header["id"] = request_body.id
    encoded = json.dumps(header).encode()
    if not binary:
        return Response(encoded, media_type="application/json")
    return Response(
        b"".join([encoded, *binary]),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(encoded))},
    )


async def protocol_error(request: Request, error: Exception) -> JSONResponse:
    """The protocol's error body for a refused request (registered on the app)."""
    assert isinstance(error, ProtocolError)
    return JSONResponse({"error": error.message}, status_code=error.status)


class ProtocolErrorBody(BaseModel):
    """The protocol's error answer."""

    error: str


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ProtocolErrorBody} for status in statuses}


# Probes answer with an empty body: the status is the answer.
_PROBE: dict[str, Any] = {
    "response_class": Response,
    "responses": {200: {"description": "Yes", "content": {}}},
}
_INFER_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The outputs, as JSON or as a JSON header followed by binary tensors.",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    },
}

router = APIRouter(prefix="/v2", tags=["open inference protocol"])


@router.get("")
async def server_metadata(request: Request) -> dict[str, Any]:
    """Server metadata."""
    return {
        "name": "cat-dog-inference",
        "version": request.app.version,
        "extensions": ["binary_tensor_data", "model_configuration", "model_repository"],
    }


@router.get("/health/live", **_PROBE)
async def live() -> Response:
    """200 while the process answers."""
    return Response(status_code=200)


@router.get(
    "/health/ready",
    response_class=Response,
    responses={
        200: {"description": "Ready", "content": {}},
        503: {"description": "Not ready", "content": {}},
    },
)
async def ready(request: Request) -> Response:
    """200 once a model serves."""
    return Response(status_code=200 if getattr(request.app.state, "lineup", None) else 503)


@router.get("/models/{name}", responses=_errors(404))
async def model_metadata(request: Request, name: str) -> dict[str, Any]:
    """The model's metadata, with the versions serving."""
    return _metadata(request, name, None)


@router.get("/models/{name}/versions/{version}", responses=_errors(404))
async def version_metadata(request: Request, name: str, version: str) -> dict[str, Any]:
    """One version's metadata."""
    return _metadata(request, name, version)


@router.get("/models/{name}/config", responses=_errors(404))
async def model_config(request: Request, name: str) -> dict[str, Any]:
    """The model's configuration (Triton's extension), with the versions serving."""
    return _config(request, name, None)


@router.get("/models/{name}/versions/{version}/config", responses=_errors(404))
async def version_config(request: Request, name: str, version: str) -> dict[str, Any]:
    """One version's configuration."""
    return _config(request, name, version)


@router.post("/repository/index")
async def repository_index(request: Request) -> list[dict[str, str]]:
    """Triton's repository index: the active version, the one a caller may name.

    The registry's other versions, candidates included, are under `GET /admin/models`."""
    version = _manager(request).lineup.active.version
    return [{"name": _model_name(request), "version": version, "state": "READY"}]


@router.get(
    "/models/{name}/ready",
    response_class=Response,
    responses={200: {"description": "Ready", "content": {}}, **_errors(404)},
)
async def model_ready(request: Request, name: str) -> Response:
    """200 when the model serves."""
    _predictor(request, name, None)
    return Response(status_code=200)


@router.get(
    "/models/{name}/versions/{version}/ready",
    response_class=Response,
    responses={200: {"description": "Ready", "content": {}}, **_errors(404)},
)
async def version_ready(request: Request, name: str, version: str) -> Response:
    """200 when that version serves."""
    _predictor(request, name, version)
    return Response(status_code=200)


@router.post(
    "/models/{name}/infer",
    response_class=Response,
    responses={**_INFER_ANSWER, **_errors(400, 404, 413, 415)},
)
async def infer(request: Request, name: str) -> Response:
    """Infer with the line-up (the canary answers its share)."""
    return await _infer(request, name, None)


@router.post(
    "/models/{name}/versions/{version}/infer",
    response_class=Response,
    responses={**_INFER_ANSWER, **_errors(400, 404, 413, 415)},
)
async def infer_version(request: Request, name: str, version: str) -> Response:
    """Infer with one version of the line-up."""
    return await _infer(request, name, version)


async def _infer(request: Request, name: str, version: str | None) -> Response:
    # Counted here rather than in the error handler: a metadata or readiness probe for an
    # unknown model is no refused upload.
    try:
        return await _answer_infer(request, name, version)
    except ProtocolError as error:
        if error.reason is not None:
            metrics.REJECTED.labels(reason=error.reason).inc()
        raise


async def _answer_infer(request: Request, name: str, version: str | None) -> Response:
    predictor = _predictor(request, name, version)
    settings: Settings = request.app.state.settings
    body = await request.body()
    header_length = request.headers.get(HEADER_LENGTH)
    loop = asyncio.get_running_loop()
    # Parsing and building the answer are CPU work on up to MAX_UPLOAD_BYTES: in the request
    # threads, as decoding is, so that the worker's other requests are still answered.
    executor = request.app.state.executor
    parsed, photos = await loop.run_in_executor(executor, _parse, body, header_length, settings)
    try:
        answered = await answer(request, photos, predictor=predictor)
    except HTTPException as error:  # a photo the decoder refused, already counted
        raise ProtocolError(error.status_code, str(error.detail), reason=None) from None
    record(request, [Photo(data) for data in photos], answered, rgpd_consent=False)
    active_version = _manager(request).lineup.active.version
    return await loop.run_in_executor(executor, _response, parsed, name, answered, active_version)


def _parse(
    body: bytes, header_length: str | None, settings: Settings
) -> tuple[InferRequest, list[bytes]]:
    """The inference request a body holds and its photos; ProtocolError when it holds none."""
    header, binary = _split_body(body, header_length, settings)
    try:
        parsed = InferRequest.model_validate(header)
    except ValidationError as error:
        raise ProtocolError(400, f"not an inference request: {error.errors()[0]['msg']}") from None
    if len(parsed.inputs) != 1:
        raise ProtocolError(400, f"send exactly one input, {INPUT!r}")
    if parsed.id is not None and len(parsed.id) > _MAX_ID_CHARACTERS:
        raise ProtocolError(
            400, f"the request id is echoed: at most {_MAX_ID_CHARACTERS} characters"
        )
    names = [item.name for item in parsed.outputs or ()]
    unknown = [name for name in names if name not in OUTPUTS]
    if unknown:
        raise ProtocolError(400, f"unknown output(s) {unknown}; outputs are {list(OUTPUTS)}")
    repeated = sorted(name for name, times in Counter(names).items() if times > 1)
    if repeated:
        raise ProtocolError(400, f"ask for each output once; repeated: {repeated}")
    return parsed, _photos(parsed.inputs[0], binary, settings)


_NOT_OFFERED = (
    "this server offers the protocol's core and its binary_tensor_data, model_configuration and"
    " model_repository extensions; its statistics are Prometheus metrics at /metrics"
)


@router.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
    include_in_schema=False,
)
async def not_offered(request: Request, path: str) -> Response:
    """Anything else under /v2 (statistics, trace, logging, shared memory, load and unload):
    refused in the protocol's error shape, which protocol clients decode."""
    raise ProtocolError(404, f"{request.method} /v2/{path} is not offered: {_NOT_OFFERED}")
