"""Which requests the serving image's scoring server may predict together (images/mlflow/mlplatform_scoring.py)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "images" / "mlflow"))

from mlplatform_scoring import (
    TIMED_OUT,
    Batcher,
    Job,
    Settings,
    batch_key,
    double_columns,
    float_frame,
    merged_payload,
)

JSON = "application/json"


def key(payload, content_type=JSON):
    return batch_key(json.dumps(payload).encode() if not isinstance(payload, bytes) else payload, content_type)


def test_plain_split_and_records_requests_share_a_predict_call_with_their_kind():
    split = {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}
    assert key(split) == (("split", ("a", "b")), [[1, 2]])
    assert key(split, "application/json; charset=utf-8")[0] == ("split", ("a", "b"))
    assert key({"dataframe_records": [{"a": 1}]}) == (("records",), [{"a": 1}])


def test_anything_else_is_answered_alone_by_mlflows_code():
    alone = [
        {"dataframe_split": {"columns": ["a"], "data": [[1]], "index": [0]}},  # an index
        {"dataframe_split": {"columns": ["a"], "data": [[1]]}, "params": {"k": 1}},  # params
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}},  # a row of the wrong width
        {"dataframe_split": {"columns": ["a"], "data": []}},  # no rows
        {"dataframe_records": []},
        {"inputs": {"a": [1]}},
        {"instances": [{"a": 1}]},
        {"messages": [{"role": "user", "content": "hi"}]},
    ]
    for payload in alone:
        assert key(payload) == (None, None), payload
    assert key(b"not json") == (None, None)
    assert key(b'{"dataframe_split": {"columns": ["a"], "data": [[NaN]]}}') == (None, None)  # orjson reads no NaN
    assert key({"dataframe_records": [{"a": 1}]}, "text/csv") == (None, None)
    assert key({"dataframe_records": [{"a": 1}]}, "application/json; charset=latin-1") == (None, None)
    assert key({"dataframe_records": [{"a": 1}]}, None) == (None, None)


def test_merged_rows_keep_each_requests_order():
    jobs = [Job(b"", JSON, ("split", ("a",)), [[1], [2]]), Job(b"", JSON, ("split", ("a",)), [[3]])]
    assert merged_payload(("split", ("a",)), jobs) == {"dataframe_split": {"columns": ["a"], "data": [[1], [2], [3]]}}
    records = [Job(b"", JSON, ("records",), [{"a": 1}]), Job(b"", JSON, ("records",), [{"a": 2}])]
    assert merged_payload(("records",), records) == {"dataframe_records": [{"a": 1}, {"a": 2}]}


def double_schema(*names):
    from mlflow.types.schema import ColSpec, Schema

    return Schema([ColSpec("double", name) for name in names])


def test_a_signature_of_required_double_columns_gets_frames_made_directly():
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    assert double_columns(double_schema("a", "b")) == ("a", "b")
    assert double_columns(None) is None
    assert double_columns(Schema([ColSpec("double", "a"), ColSpec("long", "b")])) is None
    assert double_columns(Schema([ColSpec("double", "a"), ColSpec("double", "b", required=False)])) is None
    assert double_columns(Schema([ColSpec("double")])) is None  # no names
    assert double_columns(Schema([TensorSpec(np.dtype("float64"), (-1, 2), "a")])) is None


def test_a_frame_made_directly_is_the_frame_mlflows_parser_makes():
    """Same columns, dtypes, index and bits, before and after MLflow's schema enforcement (what the model sees)."""
    import pandas as pd
    from mlflow.models.utils import _enforce_schema
    from mlflow.utils.proto_json_utils import dataframe_from_parsed_json

    schema = double_schema("a", "b")
    rows = [[1.5, -0.0], [1e308, 5e-324], [-2.25, 3.0]]
    split = [Job(b"", JSON, ("split", ("a", "b")), rows[:1]), Job(b"", JSON, ("split", ("a", "b")), rows[1:])]
    records = [Job(b"", JSON, ("records",), [{"a": a, "b": b} for a, b in rows])]
    for key, jobs in ((("split", ("a", "b")), split), (("records",), records)):
        payload = merged_payload(key, jobs)
        theirs = dataframe_from_parsed_json(next(iter(payload.values())), key[0], schema)
        ours = float_frame(("a", "b"), key, jobs)
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
        assert (ours.to_numpy().view(np.int64) == theirs.to_numpy().view(np.int64)).all()  # -0.0 too
        ours, theirs = _enforce_schema(ours, schema), _enforce_schema(theirs, schema)
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
        assert np.asarray(ours).strides == np.asarray(theirs).strides


def test_anything_but_the_signatures_columns_of_floats_goes_to_mlflows_parser():
    def frame(key, rows):
        return float_frame(("a", "b"), key, [Job(b"", JSON, key, rows)])

    split = ("split", ("a", "b"))
    assert frame(split, [[1.0, 2.0]]) is not None
    for row in ([1, 2.0], [True, 2.0], [None, 2.0], ["1.0", 2.0], [1.0, [2.0]]):
        assert frame(split, [row]) is None, row
    assert frame(("split", ("b", "a")), [[1.0, 2.0]]) is None  # another order: MLflow's parser reorders
    assert frame(("records",), [{"b": 2.0, "a": 1.0}]) is None
    assert frame(("records",), [{"a": 1.0, "b": 2.0, "c": 3.0}]) is None
    assert frame(("records",), [{"a": 1.0}]) is None
    assert float_frame(None, split, [Job(b"", JSON, split, [[1.0, 2.0]])]) is None


class CountingModel:
    """Stands in for Model in the batcher: answers every job, remembering the size of each batch."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.batches: list[int] = []
        self.seconds = seconds

    def answer(self, jobs):
        time.sleep(self.seconds)
        self.batches.append(len(jobs))
        return [(200, JSON, b"{}")] * len(jobs)


class Histogram:
    def observe(self, _value) -> None:
        pass


def run_batcher(model, timeout: float, arrivals: int) -> list:
    """Answers to a request and one more per turn of the event loop after it, `arrivals` in all."""

    async def main():
        batcher = Batcher(model, Settings(model_uri="m"), Histogram())

        async def later(turns):
            for _turn in range(turns):
                await asyncio.sleep(0)
            return await batcher.submit(Job(b"", JSON), timeout)

        try:
            return await asyncio.gather(*(later(turn) for turn in range(arrivals)))
        finally:
            batcher.task.cancel()
            batcher.thread.shutdown(wait=True)

    return asyncio.run(main())


def test_requests_received_while_a_batch_starts_join_it():
    model = CountingModel()
    assert run_batcher(model, 10, 3) == [(200, JSON, b"{}")] * 3
    assert model.batches == [3]


def test_a_request_not_answered_in_time_gets_a_504():
    model = CountingModel(seconds=0.2)
    assert run_batcher(model, 0.05, 1) == [TIMED_OUT]
