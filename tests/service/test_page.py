"""The try-it page at `/`: how it is served (in-process), and how it behaves in a real browser
(Debian's Chromium driven by Playwright, against `python -m service` with the shipped model).

The browser tests skip, saying why, when Chromium or Playwright is missing; CI installs both
(.ci/run, pyproject's dev extras).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI

from bench.page_timing import PHONE, chromium, long_review, score, unavailable
from bench.server import Server
from model.predictor import Predictor
from service.app.page import API_KEY_MARKER, CONTENT_SECURITY_POLICY
from tests.service.conftest import assert_error, running

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "artifacts" / "review-sentiment"
STATIC = REPO / "service" / "app" / "static"

# ------------------------------------------------------------------ served in-process


@pytest.mark.anyio
async def test_page_and_assets_are_served_with_a_strict_policy(
    app_factory: Callable[..., FastAPI],
) -> None:
    async with running(app_factory()) as client:
        page = await client.get("/")
        script = await client.get("/static/page.js")
        style = await client.get("/static/page.css")
        missing = await client.get("/static/nope.js")
        traversal = await client.get("/static/..%2Fpage.py")
        again = await client.get("/", headers={"If-None-Match": page.headers["etag"]})
        schema = (await client.get("/openapi.json")).json()
        metrics = (await client.get("/metrics")).text
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<textarea" in page.text and API_KEY_MARKER in page.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert style.headers["content-type"].startswith("text/css")
    assert script.content == (STATIC / "page.js").read_bytes()
    for response in (page, script, style):
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert again.status_code == 304 and not again.content
    assert_error(missing, 404, "not_found")
    assert traversal.status_code == 404
    # Not part of the API: absent from the schema (so from the fuzzer), but counted by route.
    assert "/" not in schema["paths"] and "/static/{name}" not in schema["paths"]
    assert 'method="GET",route="/",status="200"' in metrics
    assert 'method="GET",route="/",status="304"' in metrics
    assert 'method="GET",route="/static/{name}",status="404"' in metrics


@pytest.mark.anyio
async def test_page_asks_for_the_key_when_one_is_set(app_factory: Callable[..., FastAPI]) -> None:
    async with running(app_factory(api_key="s3cret")) as client:
        page = await client.get("/")
        predict = await client.post("/predict", json={"text": "fine"})
    assert page.status_code == 200  # the page itself holds nothing secret
    assert 'data-api-key="required"' in page.text and "s3cret" not in page.text
    assert_error(predict, 401, "unauthorized")


def test_page_uses_nothing_from_another_origin() -> None:
    html = (STATIC / "index.html").read_text()
    for text in (html, (STATIC / "page.css").read_text(), (STATIC / "page.js").read_text()):
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    # The policy forbids inline code: every script and style is a same-origin file.
    assert "<style" not in html and " style=" not in html and " on" + "click=" not in html
    assert html.count("<script") == 1 and 'src="static/page.js"' in html


# ------------------------------------------------------------------ in Chromium

SKIP_REASON = unavailable()
browser_test = pytest.mark.skipif(SKIP_REASON is not None, reason=f"browser tests: {SKIP_REASON}")


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    return Predictor.load(SHIPPED)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Small limits so that every refusal is easy to reach from the page."""
    env = {
        "LOG_LEVEL": "WARNING",
        "MAX_CHARS": "8000",
        "MAX_EXPLAIN_TEXTS": "2",
        "MAX_BODY_BYTES": "16384",
    }
    log = tmp_path_factory.mktemp("page") / "server.log"
    with Server(SHIPPED, env=env, log_path=log) as running_server:
        yield running_server.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if SKIP_REASON is not None:
        pytest.skip(SKIP_REASON)
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab (its own sessionStorage) that fails the test on any script error or CSP
    violation reported to the console."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    tab.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    yield tab
    context.close()
    # 4xx answers are logged by Chromium as failed resource loads; those are the tests' point.
    assert [p for p in problems if "Failed to load resource" not in p] == []


def results(page: Any) -> list[dict[str, Any]]:
    """What the page shows for each review: label, confidence, bar, words and their colours."""
    js = """() => [...document.querySelectorAll('.result')].map(card => ({
        label: card.querySelector('.badge').textContent,
        confidence: card.querySelector('.confidence').textContent,
        bar: card.querySelector('.bar').getAttribute('aria-label'),
        widths: [...card.querySelectorAll('.bar .seg')].map(s => s.style.width),
        words: [...card.querySelectorAll('.tok')].map(t => ({
            text: t.textContent, score: Number(t.dataset.score),
            side: t.classList.contains('up') ? 'up' : t.classList.contains('down') ? 'down' : '',
            tint: getComputedStyle(t).backgroundColor})),
        unread: [...card.querySelectorAll('.unread')].map(u => u.textContent).join(' '),
        why: card.querySelector('.why')?.textContent ?? '',
        note: [...card.querySelectorAll('.note')].map(n => n.textContent).join(' '),
        text: card.querySelector('.review').textContent}))"""
    found: list[dict[str, Any]] = page.evaluate(js)
    return found


def error_text(page: Any) -> str:
    page.wait_for_selector("#error:not([hidden])")
    text: str = page.inner_text("#error")
    return text


@browser_test
def test_type_a_review_press_score_read_label_and_highlighted_words(
    page: Any, server: str, shipped: Predictor
) -> None:
    review = "A wonderful film with a superb cast, although the script was awful."
    response = page.goto(server + "/")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.evaluate("document.activeElement.id") == "text"  # ready to type
    score(page, review)
    [shown] = results(page)
    probabilities = dict(zip(shipped.labels, shipped.predict_texts([review])[0].tolist(), strict=True))
    label = max(probabilities, key=probabilities.__getitem__)
    assert shown["label"] == label
    assert shown["confidence"] == f"{100 * probabilities[label]:.1f}%"
    assert shown["bar"] == ", ".join(f"{k} {100 * v:.1f}%" for k, v in probabilities.items())
    assert shown["widths"] == [f"{100 * v:.1f}%" for v in probabilities.values()]
    # Every word the model read, in order, cut from the review at its span.
    assert [w["text"] for w in shown["words"]] == review.replace(",", "").replace(".", "").split()
    assert shown["text"] == review and shown["unread"] == ""
    colour = {w["text"]: w for w in shown["words"]}
    # Colours are oriented to the labels, not to the answer: blue toward positive.
    assert colour["wonderful"]["side"] == "up" and colour["superb"]["side"] == "up"
    assert colour["awful"]["side"] == "down"
    assert colour["wonderful"]["tint"].startswith("rgba(37, 99, 235")
    assert colour["awful"]["tint"].startswith("rgba(234, 88, 12")
    assert "wonderful" in shown["why"] and "awful" in shown["why"]
    assert page.is_visible("#legend") and "toward positive" in page.inner_text("#legend")
    assert page.is_hidden("#legend-unread")  # nothing was cut
    assert page.inner_text("#status") == "Scored."
    assert page.evaluate("new URL(location.href).searchParams.get('text')") == review


@browser_test
def test_several_reviews_one_per_line(page: Any, server: str, shipped: Predictor) -> None:
    reviews = ["Loved it, a joy from start to finish.", "Dull, slow and far too long."]
    page.goto(server + "/")
    score(page, "\n".join(reviews) + "\n\n")  # blank lines are not reviews
    shown = results(page)
    expected = [shipped.labels[int(row.argmax())] for row in shipped.predict_texts(reviews)]
    assert [r["label"] for r in shown] == expected == ["positive", "negative"]
    assert all(r["words"] for r in shown)


@browser_test
def test_a_review_the_model_cannot_read_is_not_scored_and_says_why(
    page: Any, server: str, shipped: Predictor
) -> None:
    reviews = ["Loved it, a joy from start to finish.", "Der Film war langweilig und viel zu lang.",
               "asdkjh qwpoeiru zmxncb"]
    page.goto(server + "/")
    score(page, "\n".join(reviews))
    cards = page.query_selector_all(".result")
    assert len(cards) == 3
    first = cards[0].inner_text()
    expected = shipped.labels[int(shipped.predict_texts(reviews[:1])[0].argmax())]
    assert expected in first and "Not scored" not in first
    german, mash = cards[1].inner_text(), cards[2].inner_text()
    assert "not scored" in german and "looks like German" in german and "reads English only" in german
    assert "recognises too few of these words" in mash
    for card in cards[1:]:  # no label, no probability bar: nothing that reads as an answer
        assert card.query_selector(".bar") is None and card.query_selector(".confidence") is None
        assert card.get_attribute("aria-label").endswith("not scored")
    assert page.inner_text("#status") == "Scored 3 reviews."


@browser_test
def test_explanations_refused_still_scores_and_says_so(page: Any, server: str) -> None:
    page.goto(server + "/")
    score(page, "Great fun.\nTerrible.\nIt was fine.")  # 3 > MAX_EXPLAIN_TEXTS=2
    shown = results(page)
    assert [r["label"] for r in shown] == ["positive", "negative", shown[2]["label"]]
    assert all(r["words"] == [] for r in shown)
    assert "without word colours" in shown[0]["note"] and "at most 2" in shown[0]["note"]
    assert not page.is_visible("#legend") and not page.is_visible("#error")


@browser_test
def test_refusals_are_shown_in_words_from_the_error_shape(page: Any, server: str) -> None:
    too_long = "word " * 1700  # 8,500 characters > MAX_CHARS=8000
    expected = httpx.post(server + "/predict", json={"text": too_long.strip()}).json()["error"]
    page.goto(server + "/")
    score(page, too_long)
    text = error_text(page)
    assert "The server refused this input" in text and expected["message"] in text
    assert "Request id" in text and page.query_selector_all(".result") == []
    assert page.evaluate("document.activeElement.id") == "error"  # announced and focused

    score(page, "\n".join(["a fine film " * 200] * 8))  # ~19 KB > MAX_BODY_BYTES=16384
    text = error_text(page)
    assert "Too much text for one request" in text and "Send fewer or shorter reviews" in text


@browser_test
def test_busy_server_429_says_when_to_retry(page: Any, server: str) -> None:
    body = {"error": {"type": "queue_full", "message": "Too many requests in the queue; retry later",
                      "request_id": "abc123"}}
    page.route(
        "**/predict",
        lambda route: route.fulfill(
            status=429, headers={"Retry-After": "3"}, content_type="application/json", body=json.dumps(body)
        ),
    )
    page.goto(server + "/")
    score(page, "Anything at all.")
    text = error_text(page)
    assert "The server is busy" in text and "Too many requests in the queue" in text
    assert "Try again in 3 s." in text and "abc123" in text


@browser_test
def test_a_link_fills_the_box_and_scores_at_once(page: Any, server: str) -> None:
    review = "Brilliant, moving and funny — 10/10 😀"
    page.goto(server + "/?" + urlencode({"text": review}))
    page.wait_for_selector(".result .tok")
    [shown] = results(page)
    assert page.input_value("#text") == review
    assert shown["label"] == "positive"
    # Spans are code points: the rating is one token and the emoji (two UTF-16 units) is cut
    # out whole, as the tokenizer reads both.
    words = [w["text"] for w in shown["words"]]
    assert words == ["Brilliant", "moving", "and", "funny", "10/10", "😀"]
    assert shown["text"] == review


@browser_test
def test_keyboard_only(page: Any, server: str) -> None:
    page.goto(server + "/")
    page.keyboard.type("What a wonderful surprise.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(".result")
    assert results(page)[0]["label"] == "positive"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "score"
    page.fill("#text", "Awful, boring, a waste of time.")
    page.focus("#score")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('.badge')?.textContent === 'negative'")


@browser_test
def test_phone_width_no_sideways_scrolling(browser: Any, server: str) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        page.goto(server + "/")
        score(page, long_review(1000, data=None) + " Supercalifragilistic" * 10)
        page.wait_for_selector(".result .tok")
        [shown] = results(page)
        # A long review: the middle the model did not read is shown, greyed, and said so.
        assert shown["unread"] and "not read" in shown["note"]
        assert page.is_visible("#legend-unread")
        layout = page.evaluate(
            """() => ({scroll: document.documentElement.scrollWidth,
                       button: document.querySelector('#score').getBoundingClientRect().toJSON(),
                       card: document.querySelector('.result').getBoundingClientRect().toJSON()})"""
        )
        assert layout["scroll"] <= PHONE["width"]
        assert layout["button"]["left"] >= 0 and layout["button"]["right"] <= PHONE["width"]
        assert layout["button"]["height"] >= 44  # a touch target
        assert layout["card"]["right"] <= PHONE["width"]
    finally:
        context.close()


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("page-key") / "server.log"
    with Server(SHIPPED, env={"LOG_LEVEL": "WARNING", "API_KEY": "s3cret"}, log_path=log) as running_server:
        yield running_server.url


@browser_test
def test_api_key_asked_for_and_kept_in_the_tab_only(page: Any, keyed_server: str) -> None:
    page.goto(keyed_server + "/")
    assert page.is_visible("#key")
    score(page, "A wonderful film.")
    assert "Enter the API key" in error_text(page)
    assert page.evaluate("document.activeElement.id") == "key"

    page.fill("#key", "wrong")
    score(page, "A wonderful film.")
    assert "API key missing or wrong" in error_text(page)
    assert "Missing or invalid API key" in page.inner_text("#error")

    page.fill("#key", "s3cret")
    score(page, "A wonderful film.")
    page.wait_for_selector(".result .tok")
    assert page.is_hidden("#error")
    assert page.evaluate("sessionStorage.getItem('sentiment.apiKey')") == "s3cret"
    assert page.evaluate("localStorage.length") == 0
    assert "s3cret" not in page.url


@browser_test
def test_sentence_by_sentence_shows_each_sentence_and_mixed(page: Any, server: str) -> None:
    review = "The battery died after two days and support never answered. Shame, the screen is lovely."
    one_sided = ("We stayed three nights and loved it. The room was spotless and the bed was very "
                 "comfortable. Breakfast was fresh and generous. The staff were friendly and helpful. "
                 "We will definitely come back.")
    page.goto(server + "/")
    page.check("#by-sentence")
    score(page, review + "\n" + one_sided)
    shown = page.evaluate("""() => [...document.querySelectorAll('.result')].map(card => ({
        label: card.querySelector('h2 .badge').textContent,
        mixed: card.querySelector('.mixed').textContent,
        sentences: [...card.querySelectorAll('.sentence')].map(s => ({
            label: s.querySelector('.badge').textContent,
            side: s.classList.contains('up') ? 'up' : s.classList.contains('down') ? 'down' : '',
            text: s.querySelector('.sentence-text').textContent,
            words: s.querySelectorAll('.tok').length}))}))""")
    mixed, plain = shown
    assert mixed["label"] == "negative"  # the whole review's answer, as without sentences
    assert mixed["mixed"].startswith("Mixed:")
    assert [(s["label"], s["side"], s["text"]) for s in mixed["sentences"]] == [
        ("negative", "down", review[:59]), ("positive", "up", review[60:]),
    ]
    assert [s["words"] for s in mixed["sentences"]] == [10, 5]  # the word colours, per sentence
    assert plain["mixed"].startswith("Not mixed:") and len(plain["sentences"]) == 5
    assert {s["label"] for s in plain["sentences"]} == {"positive"}
    page.uncheck("#by-sentence")
    score(page, review)
    assert page.query_selector(".sentence") is None and page.query_selector(".mixed") is None
