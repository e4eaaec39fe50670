"""python -m service.checklist: the behavioural suite (model/checklist.py) against a running
service through its typed client (service/client.py)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from model.checklist import ChecklistError, PredictorScorer, build_suite, run_suite
from model.checklist import main as checkpoint_main
from service.checklist import HTTP_CHUNK, HttpScorer, main
from service.client import SentimentClient
from tests.service.test_e2e import free_port, server


def fake_service(requests: list[httpx.Request], status: int = 200) -> httpx.MockTransport:
    """/predict in the service's shapes: P(positive) is 0.9 for texts with 'great', else 0.2."""

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if status != 200:
            error = {"type": "unauthorized", "message": "missing or wrong API key", "request_id": "r"}
            return httpx.Response(status, json={"error": error})
        texts = json.loads(request.content)["texts"]
        predictions = []
        for text in texts:
            p = 0.9 if "great" in text else 0.2
            label = "positive" if p >= 0.5 else "negative"
            predictions.append({"label": label, "confidence": max(p, 1 - p),
                                "probabilities": {"negative": 1 - p, "positive": p}})
        return httpx.Response(200, json={"model": "fake@abc", "predictions": predictions})

    return httpx.MockTransport(handle)


def scorer_on(transport: httpx.MockTransport, api_key: str | None = None) -> HttpScorer:
    return HttpScorer(SentimentClient("http://svc", api_key=api_key, transport=transport))


def test_url_mode_sends_chunks_with_the_key_and_reads_the_model_id() -> None:
    requests: list[httpx.Request] = []
    texts = [f"review {i} was great" if i % 3 else f"review {i}" for i in range(150)]
    with scorer_on(fake_service(requests), api_key="k1") as scorer:
        scores = scorer(texts)
        assert scorer.model == "fake@abc"
    assert [s["positive"] for s in scores] == [0.9 if i % 3 else 0.2 for i in range(150)]
    sizes = [len(json.loads(r.content)["texts"]) for r in requests]
    assert sizes == [HTTP_CHUNK, HTTP_CHUNK, 150 - 2 * HTTP_CHUNK]
    assert all(r.headers["authorization"] == "Bearer k1" and r.url.path == "/predict" for r in requests)


def test_url_mode_errors_are_one_clear_message() -> None:
    with scorer_on(fake_service([], status=401)) as scorer, pytest.raises(
        ChecklistError, match="401 unauthorized: missing or wrong API key"
    ):
        scorer(["fine"])


def test_withheld_scores_are_one_clear_message() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        withheld = {"label": None, "confidence": None, "probabilities": None, "readable": False}
        return httpx.Response(200, json={"model": "m@1", "predictions": [withheld]})

    with scorer_on(httpx.MockTransport(handle)) as scorer, pytest.raises(
        ChecklistError, match="withheld the scores of 1 texts it cannot read; run it with UNSUPPORTED_TEXT"
    ):
        scorer(["Ce film est une perte de temps"])


def test_url_mode_unreachable_service_exits_2(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # bound, then released: nothing listens there
    assert main(["--url", url, "--max-cases", "1", "--timeout", "2"]) == 2
    assert f"GET {url}/model" in caplog.text  # the labels are asked first


@pytest.mark.slow
def test_url_mode_against_the_real_service_matches_the_checkpoint(
    tiny_checkpoint_dir: Path, tmp_path: Path
) -> None:
    suite = build_suite(max_cases=6)
    offline = run_suite(suite, PredictorScorer(tiny_checkpoint_dir))
    with server(tiny_checkpoint_dir, tmp_path / "server.log", API_KEY="s3cret") as (_, url), \
            HttpScorer(SentimentClient(url, api_key="s3cret")) as scorer:
        served = run_suite(suite, scorer)
    assert served.model.startswith("tiny@")
    assert [(r.name, r.failures) for r in served.tests] == [(r.name, r.failures) for r in offline.tests]


@pytest.mark.slow
def test_the_url_command_line_against_the_real_service(
    tiny_checkpoint_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert checkpoint_main(["--checkpoint", str(tiny_checkpoint_dir), "--max-cases", "3", "--json"]) == 0
    offline = json.loads(capsys.readouterr().out)
    with server(tiny_checkpoint_dir, tmp_path / "server.log", API_KEY="s3cret") as (_, url):
        assert main(["--url", url, "--api-key", "s3cret", "--max-cases", "3", "--json"]) == 0
        served = json.loads(capsys.readouterr().out)
        assert main(["--url", url, "--api-key", "wrong", "--max-cases", "3"]) == 2  # one clear error
    assert served["model"].startswith("tiny@") and served["model"] == offline["model"]
    assert served["tests"] == offline["tests"]
