"""Browser tests of the web page: Debian's chromium driven by Playwright, against the real
stack (the server in a child process on the tiny model, behind a real Envoy).

The server runs in its own process so Playwright's synchronous API never blocks the server's
event loop. `make test` installs chromium (`make browser`); Playwright's own browser download
is never used (`executable_path`). Every wait is on a DOM condition; the timeouts are upper
bounds for a slow machine, not assertions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT, start_server_process, tiny_config, wait_serving

sys.path.insert(0, str(ROOT / "tools"))
import envoy_config
import protogen

CHROMIUM = os.environ.get("LLMSERVE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "build" / "screenshots"
ADMIN_KEY = "web-test-admin-key-0123456789"


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(f"{CHROMIUM} not found: `make browser` installs Debian's chromium (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
def web_descriptor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return protogen.generate_descriptor(tmp_path_factory.mktemp("web-descriptor") / "llmserve.pb")


def _stack(folder: Path, tiny_model_dir: Path, descriptor: Path, extra: str = "",
           env: dict[str, str] | None = None) -> Iterator[str]:
    """A server process on the tiny model and an Envoy in front of it (its metrics port
    behind `GET /metrics` too); yields Envoy's URL."""
    metrics_port = envoy_config.free_port()
    env = {**(env or {}), "LLMSERVE_METRICS__PORT": str(metrics_port)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        server, port = start_server_process(tiny_config(folder, tiny_model_dir, extra))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        wait_serving(port)
        http_port, admin_port = envoy_config.free_port(), envoy_config.free_port()
        config = envoy_config.render(port, http_port, admin_port, descriptor, folder / "envoy.yaml",
                                     http_host="127.0.0.1", metrics=[("127.0.0.1", metrics_port)])
        proxy = envoy_config.start_envoy(config, http_port, admin_port, log_path=folder / "envoy.log")
        try:
            yield f"http://127.0.0.1:{http_port}"
        finally:
            envoy_config.stop_envoy(proxy)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def web_url(tmp_path_factory, tiny_model_dir: Path, web_descriptor: Path) -> Iterator[str]:
    """Auth off: the single-user machine `make run` gives. Module-scoped, so these processes
    are gone before the rest of the suite runs."""
    # Specialist training kept to a few short steps, SAE progress written often: the tests
    # watch the jobs, not their quality.
    yield from _stack(tmp_path_factory.mktemp("web-stack"), tiny_model_dir, web_descriptor,
                      extra="[specialist]\nsteps = 6\nbatch_size = 2\nseq_len = 32\neval_sequences = 2\n"
                            "general_samples = 2\n[sae]\nprogress_interval_s = 0.2")


@pytest.fixture(scope="module")
def web_url_auth(tmp_path_factory, tiny_model_dir: Path, web_descriptor: Path) -> Iterator[str]:
    """auth.mode = api_key: every call but health and the page needs a key."""
    yield from _stack(tmp_path_factory.mktemp("web-stack-auth"), tiny_model_dir, web_descriptor,
                      extra='[auth]\nmode = "api_key"', env={"LLMSERVE_AUTH__ADMIN_KEY": ADMIN_KEY})


@pytest.fixture(scope="module")
def browser(chromium_path: str):
    """Module-scoped: Playwright's synchronous API runs its own event loop on this thread, so
    it must be gone before the asyncio tests of later modules run theirs."""
    from playwright.sync_api import expect, sync_playwright

    # Upper bound of every DOM wait (a busy 2-core machine), not a speed claim.
    expect.set_options(timeout=180_000)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (empty storage) at a desktop size."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(180_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def screenshot(page, name: str, locator=None) -> None:
    """Writes build/screenshots/<name>.png (not committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (locator or page).screenshot(path=str(SCREENSHOTS / f"{name}.png"))
