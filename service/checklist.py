"""The behavioural suite (model/checklist.py) against a running service, through its typed client:

    python -m service.checklist --url URL [--api-key KEY] [--json] [--fail-above RATE]

The same tests and report as `python -m model.checklist` on a checkpoint; the answers come over
HTTP from `SentimentClient` (service/client.py: at most HTTP_CHUNK texts a request, retries on
429, 503 and dropped connections). Here, not in model/: the model imports nothing of the
service. The service must score every text (UNSUPPORTED_TEXT=score where the model cannot read
some).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Self

import httpx

from model.checklist import ChecklistError, Probs, run_cli, suite_parser
from service.client import SentimentClient, ServiceError
from service.schemas import DEFAULT_MAX_BATCH

HTTP_CHUNK = DEFAULT_MAX_BATCH  # texts a request may hold by default


class HttpScorer:
    """Probabilities from a running service; every failure is one ChecklistError."""

    def __init__(self, client: SentimentClient) -> None:
        self.client = client
        self.model = client.base_url  # until an answer names the served model

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.client.close()

    def __call__(self, texts: list[str]) -> list[Probs]:
        scores: list[Probs] = []
        for start in range(0, len(texts), HTTP_CHUNK):
            scores.extend(self._predict(texts[start : start + HTTP_CHUNK]))
        return scores

    def labels(self) -> list[str]:
        """The served model's labels (GET /model)."""
        with self._failing_as(f"GET {self.client.base_url}/model"):
            return [str(label) for label in self.client.model_info()["labels"]]

    def _predict(self, texts: list[str]) -> list[Probs]:
        with self._failing_as(f"POST {self.client.base_url}/predict"):
            result = self.client.predict_result(texts)
        self.model = result.model
        if len(result.predictions) != len(texts):
            raise ChecklistError(
                f"POST /predict: {len(result.predictions)} predictions for {len(texts)} texts"
            )
        scores = [p.probabilities for p in result.predictions]
        withheld = sum(p is None for p in scores)
        if withheld:
            raise ChecklistError(f"POST /predict: the service withheld the scores of {withheld} texts "
                                 "it cannot read; run it with UNSUPPORTED_TEXT=score")
        return [dict(p) for p in scores if p is not None]

    @contextlib.contextmanager
    def _failing_as(self, request: str) -> Iterator[None]:
        """Any failure of `request` as one ChecklistError."""
        try:
            yield
        except (httpx.HTTPError, ServiceError) as exc:
            raise ChecklistError(f"{request}: {exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:  # a body not in the service's shape
            raise ChecklistError(f"{request}: unexpected answer ({exc!r})") from exc


@contextlib.contextmanager
def service_scorer(args: argparse.Namespace) -> Iterator[tuple[HttpScorer, Sequence[str]]]:
    client = SentimentClient(args.url, api_key=args.api_key, timeout=args.timeout)
    with HttpScorer(client) as scorer:
        yield scorer, scorer.labels()


def build_parser() -> argparse.ArgumentParser:
    p = suite_parser("python -m service.checklist",
                     "Behavioural tests (CheckList-style MFT/INV/DIR) against a running service.")
    p.add_argument("--url", required=True, help="the service, e.g. http://localhost:8000")
    p.add_argument("--api-key", default=None, help="bearer token, if the service asks for one")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    return run_cli(build_parser().parse_args(argv), service_scorer)


if __name__ == "__main__":
    sys.exit(main())
