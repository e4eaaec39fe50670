// The try-it page: POST the box's reviews to /predict (with explanations) and draw the answers.
// Plain DOM, no libraries; text from the server is only ever set with textContent.
"use strict";

(function () {
  const KEY_STORAGE = "sentiment.apiKey"; // sessionStorage: this tab only, gone when it closes
  const EXPLAIN_REFUSED = new Set(["too_many_to_explain", "too_long_to_explain"]);
  const MAX_TINT = 0.45; // strongest word tint; dark text stays above 4.5:1 contrast on it
  const MIN_TINT = 0.05; // weaker words (relative to the review's strongest) stay plain
  const MIN_MARK = 0.25; // from here on a word is also underlined (solid: up, dashed: down)
  const TOP_WORDS = 3;
  const BREAK = /<br\s*\/?>/gi; // model/text.py BREAK_RE
  const TITLES = {
    400: "The server could not read the request",
    401: "API key missing or wrong",
    408: "The request took too long to send",
    413: "Too much text for one request",
    415: "The server refused the request format",
    422: "The server refused this input",
    429: "The server is busy",
    500: "The server failed",
    501: "Not available on this server",
    503: "The model is not ready",
    504: "No answer in time",
  };

  const $ = (id) => document.getElementById(id);
  const form = $("form");
  const box = $("text");
  const button = $("score");
  const status = $("status");
  const errorBox = $("error");
  const results = $("results");
  const legend = $("legend");
  const keyRow = $("key-row");
  const keyInput = $("key");
  const bySentence = $("by-sentence");

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const percent = (p) => (100 * p).toFixed(1) + "%";

  // -- the API key ------------------------------------------------------------------------------

  function showKeyRow() {
    keyRow.hidden = false;
    if (!keyInput.value) keyInput.value = sessionStorage.getItem(KEY_STORAGE) || "";
  }

  function currentKey() {
    const key = keyInput.value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
    return key;
  }

  // -- talking to the server --------------------------------------------------------------------

  function reviewsIn(value) {
    return value.split(/\r?\n/).map((line) => line.trim()).filter((line) => line.length > 0);
  }

  async function post(reviews, explain, sentences) {
    const headers = { "Content-Type": "application/json" };
    const key = currentKey();
    if (key) headers.Authorization = "Bearer " + key;
    const body = reviews.length === 1 ? { text: reviews[0] } : { texts: reviews };
    if (explain) body.explain = true;
    if (sentences) body.sentences = true;
    const response = await fetch("predict", { method: "POST", headers, body: JSON.stringify(body) });
    let payload = null;
    try {
      payload = await response.json();
    } catch (_) {
      payload = null; // not JSON (e.g. a proxy's page): described by its status alone
    }
    return { response, payload };
  }

  // Explanations refused (too many reviews or tokens, or not in this build): score without them.
  function explanationRefused(response, payload) {
    if (response.status === 501) return true;
    const details = (payload && payload.error && payload.error.details) || [];
    return response.status === 422 && details.some((d) => EXPLAIN_REFUSED.has(d.type));
  }

  async function score() {
    const reviews = reviewsIn(box.value);
    clearError();
    if (reviews.length === 0) {
      showError("Nothing to score", "Type or paste a review first.");
      box.focus();
      return;
    }
    if (document.body.dataset.apiKey === "required" && !keyInput.value.trim()) {
      showKeyRow();
      showError(TITLES[401], "Enter the API key, then press Score.");
      keyInput.focus();
      return;
    }
    button.disabled = true;
    status.textContent = reviews.length === 1 ? "Scoring…" : `Scoring ${reviews.length} reviews…`;
    try {
      const sentences = bySentence.checked;
      let { response, payload } = await post(reviews, true, sentences);
      let note = null;
      if (explanationRefused(response, payload)) {
        note = "Scored without word colours: " + payload.error.message + ".";
        ({ response, payload } = await post(reviews, false, sentences));
      }
      if (!response.ok || !payload || !Array.isArray(payload.predictions)) {
        reportFailure(response, payload);
        status.textContent = "";
        return;
      }
      render(reviews, payload, note);
      status.textContent = reviews.length === 1 ? "Scored." : `Scored ${reviews.length} reviews.`;
      rememberInUrl(box.value);
    } catch (err) {
      status.textContent = "";
      showError("Could not reach the server", String(err && err.message ? err.message : err));
    } finally {
      button.disabled = false;
    }
  }

  // A link to this page shows the same result: /?text=...
  function rememberInUrl(value) {
    if (value.length > 2000) return;
    const url = new URL(window.location.href);
    url.searchParams.set("text", value);
    history.replaceState(null, "", url);
  }

  // -- errors -----------------------------------------------------------------------------------

  function clearError() {
    errorBox.hidden = true;
    errorBox.replaceChildren();
  }

  function showError(title, message, details, footnote) {
    errorBox.replaceChildren(el("h2", "", title));
    if (message) errorBox.append(el("p", "", message));
    if (details && details.length) {
      const list = el("ul");
      for (const d of details) list.append(el("li", "", d.field ? `${d.field}: ${d.message}` : d.message));
      errorBox.append(list);
    }
    if (footnote) errorBox.append(el("p", "hint", footnote));
    errorBox.hidden = false;
    errorBox.focus();
  }

  function reportFailure(response, payload) {
    const error = payload && payload.error;
    const title = TITLES[response.status] || `The server answered ${response.status}`;
    const message = error && error.message ? error.message : `HTTP ${response.status} ${response.statusText}`;
    const hints = [];
    if (response.status === 429 || response.status === 503) {
      const after = response.headers.get("Retry-After");
      hints.push(after ? `Try again in ${after} s.` : "Try again shortly.");
    }
    if (response.status === 413) hints.push("Send fewer or shorter reviews at a time.");
    if (error && error.request_id) hints.push(`Request id ${error.request_id}.`);
    // Only the first few details: a long list would bury the message.
    const details = error && Array.isArray(error.details) ? error.details.slice(0, 5) : [];
    showError(title, message, details, hints.join(" "));
    if (response.status === 401) {
      showKeyRow();
      keyInput.focus();
    }
  }

  // -- results ----------------------------------------------------------------------------------

  // Colours mean "toward positive" (blue) or "toward negative" (orange) whatever the answer, so
  // a word keeps its colour across reviews; with two other labels, toward the second or the
  // first. Any other label (neutral) is grey, and its explanation reads "toward the answer" or
  // "against it", as with label sets that have no such pair.
  function orientation(labels) {
    if (labels.includes("positive") && labels.includes("negative")) return { up: "positive", down: "negative" };
    if (labels.length === 2) return { up: labels[1], down: labels[0] };
    return null;
  }

  const polar = (sides, label) => Boolean(sides) && (label === sides.up || label === sides.down);

  function render(reviews, payload, note) {
    results.replaceChildren();
    // Texts the model cannot read carry no probabilities: the labels come from one that does.
    const first = payload.predictions.find((p) => p.probabilities);
    const sides = first ? orientation(Object.keys(first.probabilities)) : null;
    const explained = payload.predictions.some((p) => Array.isArray(p.explanation));
    $("legend-up").textContent = sides ? `pushed toward ${sides.up}` : "pushed toward the answer";
    $("legend-down").textContent = sides ? `pushed toward ${sides.down}` : "pushed against the answer";
    legend.hidden = !explained;
    $("legend-unread").hidden = !payload.predictions.some(
      (p, i) => Array.isArray(p.explanation) && truncated(reviews[i], p.explanation)
    );
    $("model-id").textContent = payload.model ? `Model ${payload.model}` : "";
    payload.predictions.forEach((prediction, i) => {
      results.append(card(reviews[i], prediction, i, reviews.length, sides, note));
    });
  }

  // "de" -> "German": the browser knows the names; an unknown code is shown as it is.
  function languageName(code) {
    try {
      return new Intl.DisplayNames(["en"], { type: "language" }).of(code) || code;
    } catch (_) {
      return code;
    }
  }

  // Why the model could not read a text, in plain words (prediction.reason, model/language.py).
  function unreadableWhy(prediction) {
    if (prediction.reason === "other_language" && prediction.language && prediction.language !== "und") {
      return `This looks like ${languageName(prediction.language)}, and the model reads English only.`;
    }
    return "The model recognises too few of these words to read them (keyboard mash, or a language it does not know).";
  }

  // A text the model cannot read: no label unless the server scores such texts anyway.
  function unreadableCard(text, prediction, index, total) {
    const article = el("article", "result unreadable-result");
    article.setAttribute("aria-label", `Review ${index + 1}: not scored`);
    const heading = el("h2");
    heading.append(el("span", "badge", "not scored"));
    if (total > 1) heading.append(el("span", "which", `review ${index + 1} of ${total}`));
    article.append(heading);
    article.append(el("p", "unreadable-why", "Not scored: " + unreadableWhy(prediction)));
    article.append(el("p", "review", text));
    return article;
  }

  function card(text, prediction, index, total, sides, note) {
    if (prediction.readable === false && prediction.label === null) {
      return unreadableCard(text, prediction, index, total);
    }
    const article = el("article", "result");
    article.setAttribute("aria-label", `Review ${index + 1}: ${prediction.label}`);
    const heading = el("h2");
    const side = sides ? (prediction.label === sides.up ? "up" : prediction.label === sides.down ? "down" : "") : "";
    heading.append(el("span", "badge " + side, prediction.label));
    heading.append(el("span", "confidence", percent(prediction.confidence)));
    if (total > 1) heading.append(el("span", "which", `review ${index + 1} of ${total}`));
    article.append(heading);
    if (prediction.readable === false) {  // scored anyway (UNSUPPORTED_TEXT=score): say so
      article.append(el("p", "unreadable-why", "A guess: " + unreadableWhy(prediction)));
    }
    article.append(...probabilityBar(prediction.probabilities, sides));
    if (Array.isArray(prediction.sentences)) {
      article.append(mixedLine(prediction), sentenceList(text, prediction, sides));
      if (!Array.isArray(prediction.explanation) && note) article.append(el("p", "note", note));
    } else if (Array.isArray(prediction.explanation)) {
      const own = polar(sides, prediction.label) ? sides : null;
      const towardUp = own && prediction.label === own.down ? -1 : 1;
      article.append(...highlighted(text, prediction.explanation, prediction.label, own, towardUp));
    } else {
      article.append(el("p", "review", text));
      if (note) article.append(el("p", "note", note));
    }
    return article;
  }

  // "Mixed" in words, beside the label (never instead of it): docs/sentences.md.
  function mixedLine(prediction) {
    const mixed = prediction.mixed === true;
    const line = el("p", "mixed" + (mixed ? " is-mixed" : ""));
    line.append(el("strong", "", mixed ? "Mixed: " : "Not mixed: "));
    line.append(document.createTextNode(mixed
      ? "at least one sentence is clearly positive and one clearly negative."
      : "no clearly positive and clearly negative sentences side by side."));
    return line;
  }

  // Each sentence with its own label and colour, and the review's word colours within it.
  // Sentence offsets are code points, as the explanation's are.
  function sentenceList(text, prediction, sides) {
    const points = Array.from(text);
    const list = el("ol", "sentences");
    const own = polar(sides, prediction.label) ? sides : null;
    const towardUp = own && prediction.label === own.down ? -1 : 1;
    for (const sentence of prediction.sentences) {
      const side = sides ? (sentence.label === sides.up ? "up" : sentence.label === sides.down ? "down" : "") : "";
      const item = el("li", "sentence " + side);
      item.append(el("span", "badge " + side, sentence.label));
      item.append(el("span", "confidence", percent(sentence.confidence)));
      const piece = points.slice(sentence.start, sentence.end).join("");
      if (Array.isArray(prediction.explanation)) {
        const inside = prediction.explanation
          .filter((t) => t.start >= sentence.start && t.end <= sentence.end)
          .map((t) => ({ ...t, start: t.start - sentence.start, end: t.end - sentence.start }));
        const [paragraph] = highlighted(piece, inside, prediction.label, own, towardUp);
        paragraph.className = "sentence-text";
        item.append(paragraph);
      } else {
        item.append(el("p", "sentence-text", piece));
      }
      list.append(item);
    }
    return list;
  }

  function probabilityBar(probabilities, sides) {
    const entries = Object.entries(probabilities);
    const bar = el("div", "bar");
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", entries.map(([l, p]) => `${l} ${percent(p)}`).join(", "));
    for (const [label, p] of entries) {
      const kind = polar(sides, label) ? (label === sides.up ? "up" : "down") : "other";
      const seg = el("span", "seg " + kind);
      seg.style.width = percent(p); // CSSOM, allowed by the page's style-src 'self' policy
      seg.title = `${label} ${percent(p)}`;
      bar.append(seg);
    }
    const legendText = entries.map(([l, p]) => `${l} ${percent(p)}`).join(" · ");
    return [bar, el("p", "probs", legendText)];
  }

  // Spans are Python code-point offsets; JavaScript strings index UTF-16 units, so the text is
  // cut as an array of code points (emoji and other astral characters keep their place).
  function highlighted(text, explanation, label, sides, towardUp) {
    const points = Array.from(text);
    const slice = (a, b) => points.slice(a, b).join("");
    const biggest = Math.max(1e-9, ...explanation.map((t) => Math.abs(t.score)));
    const paragraph = el("p", "review");
    let at = 0;
    let unread = false;
    const gap = (a, b) => {
      if (b <= a) return;
      const piece = slice(a, b);
      if (unreadWords(piece)) {
        paragraph.append(el("span", "unread", piece));
        unread = true;
      } else {
        paragraph.append(document.createTextNode(piece));
      }
    };
    for (const token of explanation) {
      gap(at, token.start);
      const value = towardUp * token.score; // > 0: toward sides.up (or toward the answer)
      const word = el("span", "tok", slice(token.start, token.end));
      const strength = Math.min(1, Math.abs(value) / biggest);
      if (strength >= MIN_TINT) {
        const rgb = value > 0 ? "--up" : "--down";
        word.style.backgroundColor = `rgba(var(${rgb}), ${(MAX_TINT * strength).toFixed(3)})`;
      }
      if (strength >= MIN_MARK) word.classList.add(value > 0 ? "up" : "down");
      word.dataset.score = token.score.toFixed(4);
      word.title = `${token.token}: ${signed(token.score)} toward ${label}`;
      paragraph.append(word);
      at = Math.max(at, token.end);
    }
    gap(at, points.length);
    const parts = [paragraph, strongest(explanation, label, sides, towardUp)];
    if (unread) {
      parts.push(el("p", "note", "Long review: the model reads its beginning and end; the grey middle was not read."));
    }
    return parts;
  }

  // Every token the model read is explained, so words between two explained tokens (or after
  // the last) were cut by its length limit. <br /> tags are blanked by the tokenizer, so their
  // letters do not count.
  const unreadWords = (piece) => /[\p{L}\p{N}]/u.test(piece.replace(BREAK, " "));

  function truncated(text, explanation) {
    const points = Array.from(text);
    let at = 0;
    for (const token of explanation) {
      if (unreadWords(points.slice(at, token.start).join(""))) return true;
      at = Math.max(at, token.end);
    }
    return unreadWords(points.slice(at).join(""));
  }

  const signed = (x) => (x >= 0 ? "+" : "−") + Math.abs(x).toFixed(2);

  // The same information as the colours, in words (for screen readers and colour-blind readers).
  function strongest(explanation, label, sides, towardUp) {
    const scored = explanation.map((t) => ({ token: t.token, value: towardUp * t.score }));
    const pick = (sign) =>
      scored
        .filter((t) => sign * t.value > 0)
        .sort((a, b) => sign * (b.value - a.value))
        .slice(0, TOP_WORDS)
        .map((t) => `${t.token} (${Math.abs(t.value).toFixed(2)})`);
    const up = pick(1);
    const down = pick(-1);
    const upName = sides ? `toward ${sides.up}` : `toward ${label}`;
    const downName = sides ? `toward ${sides.down}` : `against ${label}`;
    const line = el("p", "why");
    line.append(el("strong", "", "Strongest words: "));
    line.append(document.createTextNode(
      `${upName}: ${up.length ? up.join(", ") : "none"}; ${downName}: ${down.length ? down.join(", ") : "none"}.`
    ));
    return line;
  }

  // -- wiring -----------------------------------------------------------------------------------

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!button.disabled) score();
  });
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  if (document.body.dataset.apiKey === "required" || sessionStorage.getItem(KEY_STORAGE)) showKeyRow();
  const initial = new URLSearchParams(window.location.search).get("text");
  if (initial) {
    box.value = initial;
    score();
  } else {
    box.focus();
  }
})();
