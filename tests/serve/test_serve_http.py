"""`deepprompt-serve` as a real process on a free port, driven over the socket by httpx.

Three tiny runs (RTE, SST-2 and CoNLL NER) share one backbone; concurrent requests of the three tasks must
come back with `deepprompt-predict`'s answers for the same inputs, and some of them must have shared a forward
pass. Then: validation errors (422 with the field), an unknown task (404 listing the tasks), the OpenAPI
schema, and a task (CB) added and removed while the server runs.
"""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest

from deepprompt.inference.inputs import read_examples
from deepprompt.predict import load_run, run_predictions

pytestmark = pytest.mark.usefixtures("one_thread")

INPUTS = {
    "rte": [
        {"premise": "good dark warm", "hypothesis": "it is good"},
        {"premise": "slow fast", "hypothesis": "bad bad awful"},
        "happy calm\tsad loud bad",
    ],
    "sst2": [{"sentence": "a good bright day good"}, "awful dull bad", {"sentence": "fine"}],
    "ner": [
        {"text": "John Smith went to Paris ."},
        "Mary Smith met London Paris",
        {"tokens": ["good", "Paris"]},
    ],
}


@pytest.fixture(scope="module")
def runs(serve_runs):
    return serve_runs


def reference(run, items, tmp_path) -> list[dict]:
    """deepprompt-predict's answers for ``items`` (written as a JSON-lines / plain-text input file)."""
    runner, module = load_run(run, "best")
    answers = []
    for i, item in enumerate(items):
        path = tmp_path / f"input_{i}.{'txt' if isinstance(item, str) else 'jsonl'}"
        path.write_text((item if isinstance(item, str) else __import__("json").dumps(item)) + "\n")
        [answer] = run_predictions(runner, module, read_examples(str(path), runner), 8, show_progress=False)
        answer.pop("line")
        answers.append(answer)
    return answers


def assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    if "probabilities" in want:
        assert got["label"] == want["label"]
        for name, p in want["probabilities"].items():
            assert got["probabilities"][name] == pytest.approx(p, abs=1e-4)
    else:
        assert got == want


def test_concurrent_mixed_task_requests_match_deepprompt_predict(server, runs, tmp_path):
    expected = {task: reference(runs[task], items, tmp_path) for task, items in INPUTS.items()}

    async def fire():
        async with httpx.AsyncClient(base_url=server, timeout=120) as client:
            calls = [
                (task, i, client.post(f"/v1/{task}/predict", json={"inputs": [item]}))
                for round_ in range(3)
                for task, items in INPUTS.items()
                for i, item in enumerate(items)
            ]
            responses = await asyncio.gather(*(c for _, _, c in calls))
            both = await client.post("/v1/rte/predict", json={"inputs": INPUTS["rte"]})
            return [(t, i, r) for (t, i, _), r in zip(calls, responses, strict=True)], both

    answered, whole = asyncio.run(fire())
    for task, i, response in answered:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["task"] == task
        [got] = body["predictions"]
        assert_same(got, expected[task][i])
    for got, want in zip(
        whole.json()["predictions"], expected["rte"], strict=True
    ):  # a batch of inputs, in order
        assert_same(got, want)
    health = httpx.get(f"{server}/health").json()
    stats = health["batcher"]
    assert stats["mixed_batches"] >= 1  # requests of different tasks ran in one forward pass
    assert stats["batches"] < len(answered)
    # on the CPU (eager_buckets=auto: off) each batch runs on its own shape, and warm-up has nothing to run
    assert health["graphs"] is None
    assert health["buckets"] == {"pad_rows": False, "pad_to_multiple_of": None, "warmed": 0, "timed": 0}


def test_validation_errors_name_the_field_and_unknown_tasks_list_the_served_ones(server):
    r = httpx.post(f"{server}/v1/rte/predict", json={"inputs": [{"premise": "x"}]})
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "inputs", 0] and "hypothesis" in error["msg"]
    r = httpx.post(f"{server}/v1/rte/predict", json={"inputs": ["no tab here"]})
    assert r.status_code == 422 and "tab-separated" in r.json()["detail"][0]["msg"]
    r = httpx.post(f"{server}/v1/rte/predict", json={"input": ["x"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "inputs"]
    r = httpx.post(f"{server}/v1/rte/predict", json={"inputs": []})
    assert r.status_code == 422
    r = httpx.post(f"{server}/v1/qnli/predict", json={"inputs": ["x"]})
    assert r.status_code == 404
    assert r.json()["detail"] == {"message": "unknown task 'qnli'", "tasks": ["ner", "rte", "sst2"]}
    schema = httpx.get(f"{server}/openapi.json").json()
    assert {"/v1/{task}/predict", "/v1/tasks", "/health"} <= set(schema["paths"])


def test_a_body_that_is_not_a_request_object_is_422_and_the_schema_documents_the_request(server):
    for body in (b"not json", b"", b"[]", b'{"inputs": "x"}'):
        r = httpx.post(f"{server}/v1/rte/predict", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, body
        assert r.json()["detail"][0]["loc"][0] == "body"
    r = httpx.post(f"{server}/v1/rte/predict", content=b"{", headers={"content-type": "application/json"})
    assert r.json()["detail"][0]["type"] == "json_invalid"
    r = httpx.post(f"{server}/v1/rte/predict", json={"inputs": [1]})
    assert {tuple(e["loc"][:3]) for e in r.json()["detail"]} == {("body", "inputs", 0)}
    post = httpx.get(f"{server}/openapi.json").json()["paths"]["/v1/{task}/predict"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/PredictRequest"}
    assert "PredictResponse" in str(post["responses"]["200"])


def test_tasks_are_listed_added_and_removed_at_runtime(server, runs, tmp_path):
    listing = httpx.get(f"{server}/v1/tasks").json()
    assert set(listing["tasks"]) == {"rte", "sst2", "ner"}
    assert listing["tasks"]["sst2"]["labels"] == ["negative", "positive"]
    assert listing["tasks"]["rte"]["prompt_length"] == 4
    assert listing["tasks"]["rte"]["prompt_parameters"] == 4 * 2 * 2 * 32  # m * layers * (k, v) * hidden
    assert listing["tasks"]["ner"]["family"] == "ner"

    r = httpx.post(f"{server}/v1/tasks", json={"name": "cb", "path": str(runs["cb"])}, timeout=120)
    assert r.status_code == 201, r.text
    assert r.json()["labels"] == ["entailment", "contradiction", "neutral"]
    items = [{"premise": "warm calm", "hypothesis": "good good"}, "dark\tsad bad"]
    r = httpx.post(f"{server}/v1/cb/predict", json={"inputs": items}, timeout=60)
    assert r.status_code == 200, r.text
    for got, want in zip(r.json()["predictions"], reference(runs["cb"], items, tmp_path), strict=True):
        assert_same(got, want)
    assert httpx.post(f"{server}/v1/tasks", json={"name": "cb", "path": str(runs["cb"])}).status_code == 409
    r = httpx.post(f"{server}/v1/tasks", json={"name": "x", "path": str(tmp_path / "nowhere")})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "path"]
    r = httpx.post(f"{server}/v1/tasks", json={"name": "bad name!", "path": str(runs["cb"])})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"]

    assert httpx.delete(f"{server}/v1/tasks/cb").json() == {"removed": "cb", "tasks": ["ner", "rte", "sst2"]}
    assert httpx.post(f"{server}/v1/cb/predict", json={"inputs": items}).status_code == 404
    r = httpx.post(f"{server}/v1/rte/predict", json={"inputs": INPUTS["rte"][:1]})  # the others still answer
    assert r.status_code == 200
    assert os.environ.get("DEEPPROMPT_DATA_DIR")  # the fixture pointed the runs at their data


def test_the_load_benchmark_drives_the_server(server):
    from deepprompt.serve.loadtest import drive

    inputs = {"rte": INPUTS["rte"][:2], "sst2": INPUTS["sst2"][:2]}
    before = httpx.get(f"{server}/health").json()["batcher"]["rows"]
    result = asyncio.run(drive(server, inputs, clients=3, total=9))
    assert result["requests"] == 9
    assert result["requests_per_s"] > 0 and 0 < result["p50_ms"] <= result["p99_ms"]
    assert httpx.get(f"{server}/health").json()["batcher"]["rows"] - before == 9
