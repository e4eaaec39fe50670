"""python -m bench.page_timing: the try-it page at `/` in a real browser (Debian's Chromium, driven by
Playwright; no browser download).

Starts `python -m service` with the shipped model, opens the page in headless Chromium and
times one click on Score until the label, the probability bar and the highlighted words are on
the screen, for a ~1,000-word review (`--runs` clicks, median and worst). With `--screenshots
DIR` it also saves page-desktop.png (1280 px wide) and page-phone.png (375 px) there.

The browser helpers here are shared with tests/service/test_page.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.reviews import load_reviews
from bench.server import REPO, Server

logger = logging.getLogger("bench.page_timing")

DEFAULT_MODEL = REPO / "artifacts" / "review-sentiment"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "aclImdb_train.tar.gz"
# Quiet, offline, unprivileged: no sandbox (root in CI), no GPU, nothing fetched in the background.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
SCREENSHOT_REVIEWS = (
    "A wonderful film: the cast is superb and the story moved me, even if the ending dragged.\n"
    "Two hours of dull dialogue and a plot with more holes than the script. Avoid.\n"
    "The effects were great but the acting was awful."
)


def chromium_path() -> str | None:
    """The system Chromium ($CHROMIUM, else `chromium` on PATH), or None."""
    candidate = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return candidate if candidate and os.access(candidate, os.X_OK) else None


def unavailable() -> str | None:
    """Why the page cannot be driven here (None when it can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if chromium_path() is None:
        return "no Chromium installed (apt-get install -y chromium)"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless system Chromium under Playwright (a `playwright.sync_api.Browser`)."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError(unavailable() or "no Chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def score(page: Any, text: str, timeout_ms: float = 30_000) -> None:
    """Fill the box, press Score, wait until the answer (or an error) is drawn."""
    page.fill("#text", text)
    page.click("#score")
    page.wait_for_function(
        "() => !document.querySelector('#score').disabled", timeout=timeout_ms
    )


def long_review(words: int = 1000, data: Path | None = DEFAULT_DATA) -> str:
    """About `words` words of real IMDB reviews joined (generated text without the data)."""
    return " ".join(" ".join(load_reviews(data, 50).texts).split()[:words])


def time_clicks(url: str, text: str, runs: int) -> list[float]:
    """Seconds from the click to the label, bar and highlighted words being on the page."""
    seconds = []
    with chromium() as browser:
        page = browser.new_page(viewport=DESKTOP)
        page.goto(url + "/")
        for _ in range(runs):
            page.evaluate("() => document.querySelector('#results').replaceChildren()")
            page.fill("#text", text)
            start = time.perf_counter()
            page.click("#score")
            page.wait_for_selector(".result .badge")
            page.wait_for_selector(".result .bar .seg")
            page.wait_for_selector(".result .tok.up, .result .tok.down")
            seconds.append(time.perf_counter() - start)
    return seconds


def screenshots(url: str, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with chromium() as browser:
        for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page = browser.new_page(viewport=viewport, device_scale_factor=1)
            page.goto(url + "/")
            score(page, SCREENSHOT_REVIEWS)
            page.wait_for_selector(".result .tok")
            path = out / f"page-{name}.png"
            page.screenshot(path=str(path), full_page=True)
            paths.append(path)
            page.close()
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="IMDB reviews for the long text")
    parser.add_argument("--words", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--screenshots", type=Path, help="directory for page-desktop.png / page-phone.png")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reason = unavailable()
    if reason:
        logger.error("bench.page_timing: %s", reason)
        return 2
    text = long_review(args.words, args.data)
    with Server(args.model_dir, env={"LOG_LEVEL": "WARNING"}) as server:
        times = time_clicks(server.url, text, args.runs)
        shots = screenshots(server.url, args.screenshots) if args.screenshots else []
    result = {
        "words": len(text.split()),
        "runs": len(times),
        "click_to_result_s": {
            "median": round(statistics.median(times), 3),
            "max": round(max(times), 3),
            "all": [round(t, 3) for t in times],
        },
        "screenshots": [str(p) for p in shots],
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
