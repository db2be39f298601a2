"""The web console (``/console``) in a real headless Chromium, driven by Playwright.

The app is served on a loopback port with a scripted model (``scripted/roomy``) and one
server tool (``get_weather``); the browser signs in with an API key, creates an agent with
the provider and model pickers, chats (the answer streams in, with the tool call and its
result), opens the run's steps, the threads list, the cost chart, and uploads and previews
a document. Every test fails on any console error or uncaught page error, and on any
request to another host than the test server (such a request is also aborted).

Needs Debian's ``chromium`` (``apt-get install chromium``; the tests are skipped, saying
so, where it is missing) and the ``playwright`` Python package (its own browser downloads
are never used: ``executable_path`` is Debian's binary).

``AI_AGENTS_SCREENSHOTS=1`` saves the screenshots into ``docs/images/console-*.png`` (the
pictures of docs/console.md); otherwise they go to the test's temporary folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    ConsoleMessage,
    Page,
    Request,
    Route,
    expect,
    sync_playwright,
)
from playwright.sync_api import (
    Error as PlaywrightError,
)

from ai_agents.api.config import ApiConfig
from ai_agents.api.testing import RunningApi, running_api
from ai_agents.config import Settings
from ai_agents.providers.base import ProviderRequest
from ai_agents.testing import FunctionProvider, call, calls
from ai_agents.tools.decorator import tool
from ai_agents.tools.registry import ToolRegistry
from tests.openai_compat import register_roomy

CHROMIUM = os.environ.get("AI_AGENTS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(),
        reason="Debian's chromium is not installed (apt-get install chromium): "
        "the console's browser tests need a real headless Chromium",
    ),
    pytest.mark.timeout(180),
]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS_ENV = "AI_AGENTS_SCREENSHOTS"
ANSWER = "It is sunny in Paris, 21 degrees."


def brain(request: ProviderRequest) -> Any:
    """The fake vendor: asks for the weather tool once, then answers with its result."""
    last = request.messages[-1]
    if last.role == "tool":
        return ANSWER
    if "weather" in last.text.lower():
        return calls(call("get_weather", city="Paris"))
    return f"You said: {last.text}"


def make_tools() -> ToolRegistry:
    registry = ToolRegistry()

    @tool(registry=registry)
    def get_weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: the city's name
        """
        return f"sunny, 21 degrees in {city}"

    return registry


@pytest.fixture
def api(settings: Settings, redis_cleanup: None) -> Iterator[RunningApi]:
    register_roomy()  # scripted/roomy in the model catalog, with prices: runs cost money
    with running_api(
        settings,
        providers={"scripted": FunctionProvider(brain)},
        tools=make_tools(),
        config=ApiConfig(key_cache_ttl=60),
    ) as running:
        yield running


@dataclass
class Watch:
    """What the page did that a test must fail on."""

    host: str
    errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text} at {message.location}")

    def on_request(self, request: Request) -> None:
        self.requests.append(request)

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"page error: {error}")

    def route(self, route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or parts.netloc == self.host:
            route.continue_()
            return
        self.external.append(url)
        route.abort()

    def check(self) -> None:
        assert self.external == [], f"requests left the host: {self.external}"
        assert self.errors == [], "\n".join(self.errors)


@dataclass
class Console:
    page: Page
    watch: Watch
    api: RunningApi
    key: str
    shots: Path

    def screenshot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"console-{name}.png"), full_page=True)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api.api, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    if os.environ.get(SCREENSHOTS_ENV) == "1":
        target = REPO / "docs" / "images"
        target.mkdir(parents=True, exist_ok=True)
        return target
    return tmp_path


@pytest.fixture
def console(api: RunningApi, screenshots: Path) -> Iterator[Console]:
    key = api.create_key("acme")
    watch = Watch(host=urlsplit(api.url).netloc)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 760})
            context.route("**/*", watch.route)
            page = context.new_page()
            page.on("console", watch.on_console)
            page.on("pageerror", watch.on_page_error)
            page.on("request", watch.on_request)
            page.set_default_timeout(15_000)
            yield Console(page, watch, api, key, screenshots)
            watch.check()
        finally:
            browser.close()


def sign_in(console: Console) -> None:
    page = console.page
    page.goto(f"{console.api.url}/console")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.fill("#api-key", console.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Agents")).to_be_visible()


def create_agent(console: Console, name: str = "Weather bot") -> str:
    page = console.page
    page.keyboard.press("n")  # the keyboard shortcut opens the new agent form
    page.fill("#agent-name", name)
    page.fill("#agent-role", "You tell the weather.")
    page.select_option("#agent-provider", "scripted")
    page.select_option("#agent-model", "roomy")
    page.fill("#agent-tools", "get_weather")
    page.select_option("#agent-memory_strategy", "first_last")
    console.screenshot("agent-form")
    page.get_by_role("button", name="Create agent").click()
    row = page.locator("#agents tbody tr", has_text=name)
    expect(row).to_contain_text("scripted/roomy")
    agent_id = row.get_attribute("data-agent")
    assert agent_id is not None
    return agent_id


def test_sign_in_create_an_agent_chat_with_a_tool_call_and_see_the_cost_chart(
    console: Console,
) -> None:
    page = console.page
    sign_in(console)
    agent_id = create_agent(console)
    with console.client() as client:
        agent = client.get(f"/agents/{agent_id}").json()
    assert (agent["provider"], agent["model"]) == ("scripted", "roomy")
    assert agent["tools"] == ["get_weather"]
    assert agent["memory_strategy"] == "first_last"
    console.screenshot("agents")

    # Chat: the run streams (SSE) and shows the tool call with its result, then the answer.
    page.locator("#agents tbody tr", has_text="Weather bot").get_by_role(
        "button", name="Chat"
    ).click()
    page.fill("#message", "What is the weather in Paris?")
    with page.expect_response(
        lambda r: r.url.endswith("/runs") and r.request.method == "POST"
    ) as ran:
        page.keyboard.press("Enter")
    assert ran.value.headers["content-type"].startswith("text/event-stream")
    assert '"stream":true' in (ran.value.request.post_data or "")
    tool_block = page.locator(".tool", has_text="get_weather")
    expect(tool_block).to_contain_text('"city":"Paris"')
    expect(tool_block).to_contain_text("sunny, 21 degrees in Paris")
    answer = page.locator(".msg.assistant").last
    expect(answer).to_contain_text(ANSWER)
    expect(answer.locator(".meta")).to_contain_text("scripted/roomy")
    expect(answer.locator(".meta")).to_contain_text("completed")
    answer.get_by_role("button", name="Steps").click()
    expect(page.locator("table.steps tbody tr")).to_have_count(3)  # model, tools, model
    expect(page.locator("table.steps")).to_contain_text("tool_calls")
    console.screenshot("chat")

    # The saved turn, reloaded: per-message usage and cost.
    page.reload()
    saved = page.locator(".msg.assistant", has_text=ANSWER)
    expect(saved.locator(".meta")).to_contain_text("tokens")
    expect(saved.locator(".meta")).to_contain_text("$")
    expect(page.locator(".tool", has_text="get_weather")).to_contain_text("sunny")

    # Threads: listed, searchable.
    page.keyboard.press("Escape")  # leaves the message box: the shortcuts work again
    page.keyboard.press("g")
    page.keyboard.press("t")
    expect(page.get_by_role("heading", name="Threads")).to_be_visible()
    expect(page.locator("#threads tbody tr")).to_have_count(1)
    page.fill("#thread-search", "no such thread")
    expect(page.locator("#threads tbody tr:visible")).to_have_count(0)
    page.fill("#thread-search", "weather")
    expect(page.locator("#threads tbody tr:visible")).to_have_count(1)
    console.screenshot("threads")

    # Usage: the cost chart has a bar of this agent; the total is what the API says.
    page.goto(f"{console.api.url}/console#/usage")
    expect(page.locator("#usage-chart svg rect[data-series='Weather bot']")).to_have_count(1)
    with console.client() as client:
        threads = client.get("/threads").json()["data"]
    assert len(threads) == 1 and threads[0]["cost"] > 0
    total = page.locator("#usage-total-cost")
    expect(total).to_contain_text("$0.00")
    assert float(total.get_attribute("data-usd") or "nan") == pytest.approx(threads[0]["cost"])
    expect(page.locator("#usage-table")).to_contain_text("Weather bot")
    page.select_option("#usage-group", "model")
    expect(page.locator("#usage-chart svg rect[data-series='scripted/roomy']")).to_have_count(1)
    page.select_option("#usage-group", "agent")
    console.screenshot("usage")

    # Nothing the page asked for went anywhere but the test server.
    hosts = {urlsplit(r.url).netloc for r in console.watch.requests}
    assert hosts == {urlsplit(console.api.url).netloc}


def test_upload_a_document_list_it_and_preview_it(console: Console, tmp_path: Path) -> None:
    page = console.page
    sign_in(console)
    document = tmp_path / "handbook.md"
    document.write_text("# Handbook\n\nThe office opens at nine.\n", encoding="utf-8")
    page.goto(f"{console.api.url}/console#/documents")
    expect(page.get_by_text("No documents yet")).to_be_visible()
    page.set_input_files("#document-file", str(document))
    page.get_by_role("button", name="Upload", exact=True).click()
    row = page.locator("#documents tbody tr", has_text="handbook.md")
    expect(row).to_be_visible()
    with console.client() as client:
        listed = client.get(f"{console.api.url}/v1/files").json()["data"]
    assert [f["filename"] for f in listed] == ["handbook.md"]
    row.click()
    expect(page.locator("#document-preview pre")).to_contain_text("The office opens at nine.")
    console.screenshot("documents")


def test_a_request_to_another_host_is_caught_twice(console: Console) -> None:
    """The guards themselves: the console's Content-Security-Policy refuses a fetch to
    another host (a console error, which fails the test), and the watch aborts and
    records any request to another host that gets past it (here: a navigation)."""
    page = console.page
    sign_in(console)
    refused = "Content Security Policy"
    with page.expect_console_message(lambda m: refused in m.text):
        page.evaluate("fetch('http://example.invalid/x').catch(() => null)")
    assert any(refused in e for e in console.watch.errors), console.watch.errors
    with pytest.raises(PlaywrightError):
        page.goto("http://example.invalid/y")
    assert console.watch.external == ["http://example.invalid/y"]
    # Both would fail the fixture's final check; this test expects them.
    console.watch.errors.clear()
    console.watch.external.clear()


def test_jobs_shows_a_queued_background_run_and_cancels_it(console: Console) -> None:
    page = console.page
    sign_in(console)
    with console.client() as client:
        agent = client.post(
            "/agents",
            json={"name": "Batch", "role": "You batch.", "provider": "scripted", "model": "roomy"},
        ).json()
        thread = client.post("/threads", json={"agent_id": agent["id"]}).json()
        job = client.post(
            f"/threads/{thread['id']}/runs", json={"input": "later", "background": True}
        ).json()
    page.keyboard.press("g")
    page.keyboard.press("j")
    queued = page.locator(f"tr[data-job='{job['id']}']")
    expect(page.get_by_role("heading", name="Queued (1)")).to_be_visible()  # no worker runs
    queued.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("heading", name="Cancelled (1)")).to_be_visible()
    with console.client() as client:
        assert client.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"
