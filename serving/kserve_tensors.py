"""KServe v2 tensors of a model call: what a score node sends, and how its scores
are read back from what the model server answers.

What goes out: the whole matrix as one FP32 tensor (the node's `input`), or named
tensors of chosen columns, each with its datatype, as Triton and ONNX models take
them. What comes back is read by name when the node names an `output`; a reply is
never guessed at: several outputs, an `[N, k]` output without a `column`, or class
labels that nobody asked for are refused with what the endpoint answered, so a
ranker never sorts by a silently chosen tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vahini.serving.api import kserve_v2_pb2 as kpb
from vahini.errors import EndpointRejected
from vahini.registry.model import Endpoint

# KServe v2 datatype -> little-endian numpy dtype of its raw bytes
RAW_DTYPES = {"FP32": "<f4", "FP64": "<f8", "FP16": "<f2", "INT8": "<i1", "INT16": "<i2", "INT32": "<i4",
              "INT64": "<i8", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "BOOL": "?"}
# The same datatype's typed field in InferTensorContents, for servers that answer without raw bytes
TYPED_CONTENTS = {"FP32": "fp32_contents", "FP64": "fp64_contents", "INT8": "int_contents",
                  "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
                  "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
                  "UINT64": "uint64_contents", "BOOL": "bool_contents"}
INTEGER = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "BOOL")


@dataclass(frozen=True)
class TensorPlan:
    """A named input tensor: the positions of its columns in the node's input matrix."""

    name: str
    positions: np.ndarray | None  # None: every column, in order
    datatype: str = "FP32"


def infer_request(endpoint: Endpoint, tensors: list[TensorPlan], rows: np.ndarray) -> kpb.ModelInferRequest:
    """One ModelInfer request for these rows (float32, rows x columns) of the node's input."""
    specs, raw = [], []
    for tensor in tensors:
        block = rows if tensor.positions is None else rows[:, tensor.positions]
        specs.append(kpb.ModelInferRequest.InferInputTensor(name=tensor.name, datatype=tensor.datatype,
                                                            shape=list(block.shape)))
        raw.append(_as_datatype(block, tensor.datatype).tobytes())
    outputs = [kpb.ModelInferRequest.InferRequestedOutputTensor(name=endpoint.output)] if endpoint.output else []
    return kpb.ModelInferRequest(model_name=endpoint.model, model_version=endpoint.version, inputs=specs,
                                 outputs=outputs, raw_input_contents=raw)


def _as_datatype(block: np.ndarray, datatype: str) -> np.ndarray:
    if datatype in ("INT32", "INT64"):
        # Integer columns (ids, buckets, int features) are exact in float32's matrix; round, never truncate.
        return np.ascontiguousarray(np.rint(block), RAW_DTYPES[datatype])
    return np.ascontiguousarray(block, RAW_DTYPES[datatype])


def read_scores(reply: kpb.ModelInferResponse, endpoint: Endpoint, rows: int, where: str) -> np.ndarray:
    """The scores in `reply`, float32, one per row; EndpointRejected when it holds no such thing."""
    index = _output_index(reply, endpoint, where)
    out = reply.outputs[index]
    values = _output_values(reply, index, where).astype(np.float64, copy=False)
    shape = list(out.shape)
    if values.size == rows and (len(shape) <= 1 or shape[1:] == [1] * (len(shape) - 1)):
        if endpoint.column not in (None, 0):
            raise EndpointRejected(f"{where} output '{out.name}' has one column (shape {shape}); "
                                   f"the node asks for column {endpoint.column}")
        return values.astype(np.float32)
    if len(shape) != 2 or shape[0] != rows or values.size != rows * shape[1]:
        raise EndpointRejected(f"{where} returned output '{out.name}' of shape {shape} ({values.size} values) "
                               f"for {rows} rows; a score node reads [{rows}], [{rows}, 1] or [{rows}, k] "
                               f"with a column")
    if endpoint.column is None:
        raise EndpointRejected(f"{where} returned output '{out.name}' of shape {shape}: {shape[1]} values per row. "
                               f"Give the score node a column (e.g. column: {shape[1] - 1} for the positive "
                               f"class of predict_proba)")
    if endpoint.column >= shape[1]:
        raise EndpointRejected(f"{where} output '{out.name}' has {shape[1]} columns (shape {shape}); "
                               f"the node asks for column {endpoint.column}")
    return values.reshape(rows, shape[1])[:, endpoint.column].astype(np.float32)


def _output_index(reply: kpb.ModelInferResponse, endpoint: Endpoint, where: str) -> int:
    names = [o.name for o in reply.outputs]
    if not names:
        raise EndpointRejected(f"{where} returned no output tensor")
    if endpoint.output:
        if endpoint.output not in names:
            raise EndpointRejected(f"{where} did not return the output '{endpoint.output}' the node asks for "
                                   f"(it returned: {', '.join(names)})")
        return names.index(endpoint.output)
    if len(names) > 1:
        raise EndpointRejected(f"{where} returned {len(names)} outputs ({', '.join(names)}); name the one that "
                               f"holds the scores with output: on the score node")
    if reply.outputs[0].datatype in INTEGER:
        # MLServer's sklearn runtime answers `predict` (class labels) unless an output is asked for.
        raise EndpointRejected(f"{where} returned {reply.outputs[0].datatype} output '{names[0]}', integers such "
                               f"as class labels, without being asked for it; name the output to score with "
                               f"(e.g. output: predict_proba, column: 1), or name '{names[0]}' to take it as is")
    return 0


def _output_values(reply: kpb.ModelInferResponse, index: int, where: str) -> np.ndarray:
    out = reply.outputs[index]
    if out.datatype not in RAW_DTYPES:
        raise EndpointRejected(f"{where} returned output '{out.name}' of datatype {out.datatype}; "
                               f"scores must be numbers")
    if reply.raw_output_contents:
        if index >= len(reply.raw_output_contents):
            raise EndpointRejected(f"{where} returned {len(reply.outputs)} outputs but "
                                   f"{len(reply.raw_output_contents)} raw contents")
        return np.frombuffer(reply.raw_output_contents[index], RAW_DTYPES[out.datatype])
    return np.asarray(getattr(out.contents, TYPED_CONTENTS.get(out.datatype, "fp32_contents")), np.float64)
