"""Which requests the serving image's scoring server may predict together (images/mlflow/mlplatform_scoring.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "images" / "mlflow"))

from mlplatform_scoring import Job, batch_key, merged_payload

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
