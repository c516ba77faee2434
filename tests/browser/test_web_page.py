"""The web page in headless Chromium against the real server and Envoy: chat streams a reply
and survives a reload, a taught fact shows in the LUT answer and not in the base one, a
specialist is added (with its retraining) and deleted, an SAE job reports progress and draws
its loss chart, server errors read as sentences, and a key is asked for when auth is on."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from tests.browser.conftest import ADMIN_KEY, screenshot

FACT = "Zorblat the lizard lives in Quenford."
PROMPT = "User: Where does Zorblat the lizard live?\nAssistant:"
CORPUS = "\n".join(f"Line {i}: the harbour cranes lift steel containers onto ship number {i}." for i in range(60))


def _open(page, url: str, section: str):
    page.goto(f"{url}/#{section}")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator(f"section#{section}")).to_be_visible()


def test_page_and_its_modules_come_through_envoy(page, web_url: str):
    _open(page, web_url, "status")
    for path, kind in (("/web/main.js", "text/javascript"), ("/web/app.css", "text/css")):
        resp = page.request.get(web_url + path)
        assert resp.status == 200 and resp.headers["content-type"].startswith(kind), path
    expect(page.get_by_role("link", name="Status")).to_have_attribute("aria-current", "page")
    models = page.get_by_role("table", name="Models")
    expect(models).to_contain_text("tiny")
    expect(page.locator("#status-health")).to_contain_text("device")
    screenshot(page, "status")


def test_status_shows_live_figures_from_the_metrics(page, web_url: str):
    _open(page, web_url, "status")
    figures = page.locator("#status-metrics")
    expect(figures.locator('[data-metric="Requests running"]')).to_have_text("0")
    before = int(figures.locator('[data-metric="Tokens generated"]').inner_text())
    reply = page.request.post(web_url + "/completion", data={"prompt": "Hello", "max_new_tokens": 5})
    assert reply.ok, reply.text()
    generated = reply.json()["usage"]["completion_tokens"]
    # The section refreshes itself while it is on screen: the new tokens show up.
    expect(figures.locator('[data-metric="Tokens generated"]')).to_have_text(str(before + generated))
    expect(figures.locator('[data-metric="Tokens per second"]')).not_to_have_text("…")


def test_chat_streams_a_reply_and_keeps_the_session_across_reloads(page, web_url: str):
    _open(page, web_url, "chat")
    page.get_by_role("textbox", name="Message").fill("Hello there")
    page.get_by_role("button", name="Send").click()
    # The first message starts the session and streams its reply (StreamConversation as
    # server-sent events); the next ones stream through StreamMessage.
    first = page.locator("#chat-log li.llm").nth(0)
    expect(first).to_have_attribute("data-state", "done")
    assert int(first.get_attribute("data-deltas")) > 1, "the first reply came in one piece"
    expect(page.locator("#chat-sessions button")).to_have_count(1)

    page.get_by_role("textbox", name="Message").fill("Tell me more")
    page.get_by_role("button", name="Send").click()
    second = page.locator("#chat-log li.llm").nth(1)
    expect(second).to_have_attribute("data-state", "done")
    deltas = int(second.get_attribute("data-deltas"))
    assert deltas > 1, "the reply came in one piece, not token by token"
    reply = second.locator(".text").inner_text()
    assert reply.strip()
    screenshot(page, "chat")

    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#chat-log li")).to_have_count(4)
    expect(page.locator("#chat-log li.user").nth(1)).to_contain_text("Tell me more")
    expect(page.locator("#chat-log li.llm").nth(1).locator(".text")).to_have_text(reply)

    page.get_by_role("button", name="End conversation").click()
    expect(page.locator("#chat-status")).to_have_text("Conversation ended.")
    expect(page.locator("#chat-log li")).to_have_count(0)
    expect(page.locator("#chat-sessions button")).to_have_count(0)


def test_chat_stop_button_ends_a_stream(page, web_url: str):
    _open(page, web_url, "chat")
    page.get_by_role("textbox", name="Message").fill("Write a very long story")
    page.get_by_role("button", name="Send").click()
    reply = page.locator("#chat-log li.llm").nth(0)
    expect(reply).to_have_attribute("data-deltas", re.compile(r"\d+"))
    page.get_by_role("button", name="Stop").click()
    expect(reply).to_have_attribute("data-state", re.compile("stopped|done"))
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


def test_teach_a_fact_then_see_it_in_the_lut_answer_only(page, web_url: str):
    _open(page, web_url, "teach")
    page.get_by_role("textbox", name="LUT name").fill("web-facts")
    page.get_by_role("textbox", name="Context (optional)").fill("Assistant: ")
    page.get_by_role("textbox", name="Fact").fill(FACT)
    page.get_by_role("button", name="Teach", exact=True).click()
    entries = page.get_by_role("table", name="Entries")
    expect(entries).to_contain_text(FACT)

    page.get_by_role("textbox", name="Prompt").fill(PROMPT)
    page.get_by_role("slider", name=re.compile("Threshold")).fill("0")
    expect(page.locator("#ask-threshold-value")).to_have_text("0.00")
    page.get_by_role("button", name="Generate").click()
    with_lut, base = page.locator("#ask-lut"), page.locator("#ask-base")
    expect(with_lut).to_have_attribute("data-state", "done")
    expect(base).to_have_attribute("data-state", "done")
    expect(with_lut).to_contain_text(FACT)
    assert FACT not in base.inner_text()
    screenshot(page, "teach")

    entries.get_by_role("button", name=f"Delete {FACT}").click()
    expect(entries).not_to_contain_text(FACT)
    expect(entries).to_contain_text("No entries yet.")


def test_server_errors_read_as_sentences(page, web_url: str):
    _open(page, web_url, "teach")
    page.get_by_role("textbox", name="LUT name").fill("x" * 200)
    page.get_by_role("textbox", name="Fact").fill(FACT)
    page.get_by_role("button", name="Teach", exact=True).click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Invalid input:")
    expect(alert).to_contain_text("lut_name")
    text = alert.inner_text()
    assert not text.lstrip().startswith("{") and '"code"' not in text
    expect(page.locator("#teach-status")).to_have_class(re.compile("error"))


def _add_specialist(page, name: str) -> None:
    page.get_by_role("textbox", name="Name").fill(name)
    page.get_by_label("Corpus file (.txt)").set_input_files(
        files=[{"name": f"{name}.txt", "mimeType": "text/plain", "buffer": CORPUS.replace("harbour", name).encode()}])
    page.get_by_role("button", name="Add specialist").click()
    expect(page.locator("#spec-status")).to_contain_text(f"'{name}' added")
    expect(page.locator("#spec-job-text")).to_contain_text("finished in", timeout=300_000)


def test_add_a_specialist_watch_its_training_then_delete_it(page, web_url: str):
    _open(page, web_url, "specialists")
    table = page.get_by_role("table", name="Specialists")
    _add_specialist(page, "harbour")
    bar = page.get_by_role("progressbar", name="Retraining progress")
    expect(page.locator("#spec-job")).to_have_attribute("data-state", "completed")
    expect(bar).to_have_attribute("aria-valuetext", "100 %")
    expect(table.get_by_role("row").filter(has_text="harbour")).to_contain_text("ready")

    # The last specialist cannot go: the server says why, in words.
    table.get_by_role("button", name="Delete harbour").click()
    expect(page.get_by_role("alert")).to_contain_text("last specialist")

    _add_specialist(page, "orchard")
    expect(table.get_by_role("row").filter(has_text="orchard")).to_contain_text("ready")
    screenshot(page, "specialists")
    table.get_by_role("button", name="Delete harbour").click()
    expect(table.get_by_role("row").filter(has_text="harbour")).to_have_count(0)
    expect(page.locator("#spec-job")).to_have_attribute("data-state", "completed")
    expect(table.get_by_role("row").filter(has_text="orchard")).to_have_count(1)


def test_sae_job_shows_progress_and_draws_the_loss_chart(page, web_url: str):
    _open(page, web_url, "sae")
    expect(page.get_by_role("combobox", name="Model").locator("option[value=tiny]")).to_have_count(1)
    page.get_by_role("combobox", name="Model").select_option("tiny")
    page.get_by_role("spinbutton", name="Layer").fill("1")
    page.get_by_label("Corpus file", exact=True).set_input_files(
        files=[{"name": "cranes.txt", "mimeType": "text/plain", "buffer": CORPUS.encode()}])
    page.get_by_role("spinbutton", name="Latents (hidden_dim)").fill("128")
    page.get_by_role("spinbutton", name="Max epochs").fill("20")
    page.get_by_role("button", name="Start training").click()
    bar = page.get_by_role("progressbar", name="Training progress")
    expect(bar).to_be_visible()
    box = page.locator("#sae-job")
    expect(box).to_have_attribute("data-state", "completed", timeout=300_000)
    expect(bar).to_have_attribute("aria-valuetext", "100 %")
    canvas = page.get_by_role("img", name="Training loss and L0 by tokens processed")
    expect(canvas).to_have_attribute("data-points", re.compile(r"[1-9]\d*"))
    # The chart has ink: some pixel of the canvas differs from the first one.
    assert page.evaluate("""() => {
      const c = document.getElementById('sae-chart'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 4; i < d.length; i += 4) if (d[i] !== d[0] || d[i + 3] !== d[3]) return true;
      return false; }""")
    link = page.get_by_role("link", name="Download results (JSON)")
    expect(link).to_have_attribute("href", re.compile("^blob:"))
    expect(page.locator("#sae-metrics")).to_contain_text("L0")
    with page.expect_download() as info:
        link.click()
    assert info.value.suggested_filename.startswith("sae-") and info.value.suggested_filename.endswith(".json")
    screenshot(page, "sae")


def test_narrow_viewport_has_no_sideways_scroll(browser, web_url: str):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        for section in ("chat", "teach", "specialists", "sae", "status"):
            _open(page, web_url, section)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{section} is {width} px wide at a 390 px viewport"
            screenshot(page, f"{section}-390px", page.locator(f"section#{section}"))
        _open(page, web_url, "chat")
        expect(page.get_by_role("button", name="Send")).to_be_visible()
    finally:
        context.close()


def test_with_auth_on_the_page_asks_for_a_key(page, web_url_auth: str):
    _open(page, web_url_auth, "status")
    dialog = page.get_by_role("dialog", name="API key needed")
    expect(dialog).to_be_visible()
    dialog.get_by_label("API key").fill(ADMIN_KEY)
    dialog.get_by_role("button", name="Save key").click()
    expect(page.get_by_role("table", name="Models")).to_contain_text("tiny")
    assert page.evaluate("sessionStorage.getItem('llmserve.apiKey')") == ADMIN_KEY


def test_chat_json_schema_mode_shows_the_validated_document(page, web_url: str):
    _open(page, web_url, "chat")
    page.get_by_text("JSON schema mode").click()
    page.get_by_role("checkbox", name="Constrain the reply to this JSON schema").check()
    page.get_by_role("textbox", name="JSON schema").fill(
        '{"type": "object", "properties": {"answer": {"type": "string", "maxLength": 20}}, "required": ["answer"]}')
    page.get_by_role("textbox", name="Message").fill("Answer in JSON")
    page.get_by_role("button", name="Send").click()
    reply = page.locator("#chat-log li.llm").nth(0)
    expect(reply).to_have_attribute("data-state", "done")
    document = reply.get_by_label("Validated JSON document")
    expect(document).to_contain_text('"answer"')
    assert set(json.loads(document.inner_text())) == {"answer"}
