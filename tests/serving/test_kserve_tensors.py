"""What a score node sends and how it reads the reply (serving.kserve_tensors), on
replies built as KServe v2 servers build them; the real servers are called in
test_model_servers.py."""

from __future__ import annotations

import numpy as np
import pytest

from vahini.serving.api import kserve_v2_pb2 as kpb
from vahini.serving.kserve_tensors import TensorPlan, infer_request, read_scores
from vahini.errors import EndpointRejected
from vahini.logs import RateLimitedLog
from vahini.registry.model import Endpoint

Output = kpb.ModelInferResponse.InferOutputTensor


def reply(*outputs: tuple[str, str, list[int], np.ndarray], raw: bool = True) -> kpb.ModelInferResponse:
    tensors = [Output(name=n, datatype=d, shape=s) for n, d, s, _ in outputs]
    if raw:
        return kpb.ModelInferResponse(outputs=tensors, raw_output_contents=[v.tobytes() for *_, v in outputs])
    for tensor, (_, d, _, values) in zip(tensors, outputs):
        field = {"FP64": "fp64_contents", "INT64": "int64_contents", "FP32": "fp32_contents"}[d]
        getattr(tensor.contents, field).extend(values.ravel().tolist())
    return kpb.ModelInferResponse(outputs=tensors)


PROBA = np.array([[0.9, 0.1], [0.25, 0.75], [0.5, 0.5]], "<f8")


@pytest.mark.parametrize("raw", [True, False], ids=["raw bytes", "typed contents"])
def test_a_named_output_s_column_is_the_score_converted_from_fp64(raw):
    got = read_scores(reply(("predict", "INT64", [3, 1], np.array([0, 1, 0], "<i8")),
                            ("predict_proba", "FP64", [3, 2], PROBA), raw=raw),
                      Endpoint("t", "m", output="predict_proba", column=1), 3, "here")
    assert got.dtype == np.float32 and got.tolist() == PROBA[:, 1].astype(np.float32).tolist()


@pytest.mark.parametrize("shape", [[3], [3, 1]])
def test_one_value_per_row_is_read_as_is(shape):
    values = np.array([0.5, 0.25, 2.0], "<f4")
    assert read_scores(reply(("s", "FP32", shape, values)), Endpoint("t", "m"), 3, "here").tolist() == values.tolist()


REFUSED = {
    "labels nobody asked for": (("predict", "INT64", [3, 1], np.array([0, 1, 0], "<i8")), {},
                                "returned INT64 output 'predict', integers such as class labels"),
    "[N, k] without a column": (("predict_proba", "FP64", [3, 2], PROBA), {"output": "predict_proba"},
                                "output 'predict_proba' of shape [3, 2]: 2 values per row. Give the score node a "
                                "column (e.g. column: 1"),
    "a column past the last": (("predict_proba", "FP64", [3, 2], PROBA), {"output": "predict_proba", "column": 2},
                               "has 2 columns (shape [3, 2]); the node asks for column 2"),
    "a named output missing": (("scores", "FP32", [3], np.zeros(3, "<f4")), {"output": "predict_proba"},
                               "did not return the output 'predict_proba' the node asks for (it returned: scores)"),
    "too few values": (("scores", "FP32", [2], np.zeros(2, "<f4")), {}, "of shape [2] (2 values) for 3 rows"),
    "strings": (("label", "BYTES", [3], np.zeros(3, "<f4")), {"output": "label"}, "scores must be numbers"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_reply_without_plain_scores_is_refused_with_what_came_back(case):
    output, read_back, message = REFUSED[case]
    with pytest.raises(EndpointRejected, match="^here ") as info:
        read_scores(reply(output), Endpoint("t", "m", **read_back), 3, "here")
    assert message in str(info.value)


def test_several_outputs_and_none_named_is_refused_naming_them():
    with pytest.raises(EndpointRejected, match=r"returned 2 outputs \(output_label, output_probability\); name"):
        read_scores(reply(("output_label", "INT64", [3, 1], np.zeros(3, "<i8")),
                          ("output_probability", "FP32", [3, 2], PROBA.astype("<f4"))), Endpoint("t", "m"), 3, "here")


def test_named_tensors_take_their_columns_as_their_datatype_and_ask_for_the_named_output():
    rows = np.array([[1.0, 2.4999, 7.0], [3.0, 2.5001, -7.6]], np.float32)
    request = infer_request(Endpoint("t", "m", version="2", output="p"),
                            [TensorPlan("dense", np.array([2, 0]), "FP64"), TensorPlan("ids", np.array([1]), "INT64")],
                            rows)
    assert [(t.name, t.datatype, list(t.shape)) for t in request.inputs] == [("dense", "FP64", [2, 2]),
                                                                            ("ids", "INT64", [2, 1])]
    assert np.frombuffer(request.raw_input_contents[0], "<f8").tolist() == [7.0, 1.0, np.float32(-7.6), 3.0]
    assert np.frombuffer(request.raw_input_contents[1], "<i8").tolist() == [2, 3]  # rounded, not truncated
    assert [o.name for o in request.outputs] == ["p"] and request.model_version == "2"
    whole = infer_request(Endpoint("t", "m"), [TensorPlan("features", None)], rows)
    assert list(whole.inputs[0].shape) == [2, 3] and not whole.outputs
    assert np.frombuffer(whole.raw_input_contents[0], "<f4").tolist() == rows.ravel().tolist()


class Lines:
    def __init__(self):
        self.lines = []

    def warning(self, event, **fields):
        self.lines.append((event, fields))


def test_a_failure_is_logged_once_per_interval_per_key_with_how_many_were_held_back():
    now = [0.0]
    lines = Lines()
    limited = RateLimitedLog(lines, interval_s=10, clock=lambda: now[0])
    assert limited.warning(("a", "UNAVAILABLE"), "model_call_failed", n=1)
    assert not limited.warning(("a", "UNAVAILABLE"), "model_call_failed", n=2)
    assert limited.warning(("b", "UNAVAILABLE"), "model_call_failed", n=3)  # another key
    now[0] = 9.9
    assert not limited.warning(("a", "UNAVAILABLE"), "model_call_failed", n=4)
    now[0] = 10.0
    assert limited.warning(("a", "UNAVAILABLE"), "model_call_failed", n=5)
    assert [(f["n"], f["suppressed"]) for _, f in lines.lines] == [(1, 0), (3, 0), (5, 2)]
