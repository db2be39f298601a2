"""Images in user messages: each adapter sends them in its vendor's wire format to the
strict fake of that vendor (which rejects malformed image parts as the real API does),
and ``/v1`` messages take ``image_url`` and ``image_file`` parts through the official
``openai`` SDK, shows them back, and runs them on a vision model; a model without vision
fails the run with an error that says so."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from openai.types.beta.threads import Message as MessageObject

from ai_agents.api.testing import RunningApi, running_api
from ai_agents.config import Settings
from ai_agents.errors import ProviderBadRequest
from ai_agents.messages import IMAGES_KEY, ImageInput, Message
from ai_agents.providers.anthropic import AnthropicProvider
from ai_agents.providers.base import ProviderRequest, ProviderSettings
from ai_agents.providers.ollama import OllamaProvider
from ai_agents.providers.openai import OpenAIChatProvider
from ai_agents.testing import FunctionProvider
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.ollama_fake import FakeOllama
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Reply
from tests.fakes.server import serve
from tests.openai_compat import ROOMY, register_roomy
from tests.openai_shapes import conforms

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning"),
]

#: A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
LINK = "https://example.com/cat.png"
POLL_MS = 50


def looking(*images: ImageInput, text: str = "What is in the picture?") -> Message:
    return Message(role="user", content=text, metadata={IMAGES_KEY: [i.to_json() for i in images]})


def ask(model: str, message: Message) -> ProviderRequest:
    return ProviderRequest(model=model, system_prompt="Describe.", messages=[message])


# --- the adapters ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openai_vendor() -> Iterator[tuple[OpenAIFake, str]]:
    fake = OpenAIFake(api_key="sk-vendor")
    with serve(fake) as url:
        yield fake, url + "/v1"


@pytest.fixture
def openai_fake(openai_vendor: tuple[OpenAIFake, str]) -> OpenAIFake:
    openai_vendor[0].script.reset()
    return openai_vendor[0]


async def test_openai_gets_image_url_parts(
    openai_vendor: tuple[OpenAIFake, str], openai_fake: OpenAIFake
) -> None:
    provider = OpenAIChatProvider(ProviderSettings(base_url=openai_vendor[1], api_key="sk-vendor"))
    openai_fake.script.push(Reply.text("A dot."))
    answer = await provider.complete(
        ask("gpt-5.4", looking(ImageInput(DATA_URL, "low"), ImageInput(LINK)))
    )
    assert answer.content == "A dot."
    (sent,) = [m for m in openai_fake.requests[-1]["messages"] if m["role"] == "user"]
    assert sent["content"] == [
        {"type": "text", "text": "What is in the picture?"},
        {"type": "image_url", "image_url": {"url": DATA_URL, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": LINK, "detail": "auto"}},
    ]
    await provider.aclose()


async def test_anthropic_gets_image_blocks() -> None:
    fake = AnthropicFake(api_key="sk-ant-test")
    with serve(fake) as url:
        provider = AnthropicProvider(ProviderSettings(base_url=url, api_key="sk-ant-test"))
        fake.script.push(Reply.text("A dot."))
        answer = await provider.complete(
            ask("claude-haiku-4-5", looking(ImageInput(DATA_URL), ImageInput(LINK)))
        )
        await provider.aclose()
    assert answer.content == "A dot."
    (sent,) = fake.requests[-1]["messages"]
    data = base64.b64encode(PNG).decode()
    assert sent["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
        {"type": "image", "source": {"type": "url", "url": LINK}},
        {"type": "text", "text": "What is in the picture?"},
    ]


@pytest.fixture
async def ollama() -> AsyncIterator[tuple[FakeOllama, OllamaProvider]]:
    fake = FakeOllama()
    with serve(fake) as url:
        provider = OllamaProvider(ProviderSettings(base_url=url, timeout=5))
        yield fake, provider
        await provider.aclose()


async def test_ollama_gets_base64_images_and_refuses_links(
    ollama: tuple[FakeOllama, OllamaProvider],
) -> None:
    fake, provider = ollama
    fake.reply_text("A dot.")
    await provider.complete(ask("llama3.1:8b", looking(ImageInput(DATA_URL))))
    (sent,) = [m for m in fake.requests[-1]["messages"] if m["role"] == "user"]
    assert sent["images"] == [base64.b64encode(PNG).decode()]
    # A model without native tools (XML injection) merges turns and keeps the images.
    fake.reply_text("A dot.")
    await provider.complete(ask("gemma2:2b", looking(ImageInput(DATA_URL))))
    (sent,) = [m for m in fake.requests[-1]["messages"] if m["role"] == "user"]
    assert sent["images"] == [base64.b64encode(PNG).decode()]
    before = len(fake.requests)
    with pytest.raises(ProviderBadRequest, match="inline data"):
        await provider.complete(ask("llama3.1:8b", looking(ImageInput(LINK))))
    assert len(fake.requests) == before  # refused before anything was sent


# --- /v1 -----------------------------------------------------------------------------------


@pytest.fixture
def api(
    settings: Settings,
    redis_cleanup: None,
    openai_vendor: tuple[OpenAIFake, str],
    openai_fake: OpenAIFake,
) -> Iterator[RunningApi]:
    register_roomy()  # a test model without vision
    upstream = OpenAIChatProvider(ProviderSettings(base_url=openai_vendor[1], api_key="sk-vendor"))
    plain = FunctionProvider(lambda request: "never called")
    with running_api(settings, providers={"openai": upstream, "scripted": plain}) as running:
        yield running


@pytest.fixture
def client(api: RunningApi) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{api.url}/v1", api_key=api.create_key("acme"), max_retries=0
    ) as c:
        yield c


def test_v1_message_images_reach_a_vision_model(
    client: openai.OpenAI, openai_fake: OpenAIFake
) -> None:
    picture = client.files.create(file=("dot.png", PNG), purpose="vision")
    assert picture.purpose == "vision"
    parts: Any = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": DATA_URL, "detail": "high"}},
        {"type": "image_file", "image_file": {"file_id": picture.id}},
    ]
    thread = client.beta.threads.create()
    made = client.beta.threads.messages.with_raw_response.create(
        thread.id, role="user", content=parts
    )
    shown = conforms(MessageObject, made.http_response.json())
    assert [p.type for p in shown.content] == ["text", "image_url", "image_file"]
    assert shown.content[1].image_url.url == DATA_URL  # type: ignore[union-attr]
    assert shown.content[1].image_url.detail == "high"  # type: ignore[union-attr]
    assert shown.content[2].image_file.file_id == picture.id  # type: ignore[union-attr]
    assert shown.metadata == {}
    listed = client.beta.threads.messages.list(thread.id).data[0]
    assert listed.content == shown.content

    # The file is read once: the message keeps the image when the file is deleted.
    client.files.delete(picture.id)
    assistant = client.beta.assistants.create(model="gpt-5.4", instructions="Describe.")
    openai_fake.script.push(Reply.text("Two dots."))
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )
    assert run.status == "completed", run.last_error
    (sent,) = [m for m in openai_fake.requests[-1]["messages"] if m["role"] == "user"]
    assert sent["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": DATA_URL, "detail": "high"}},
        {"type": "image_url", "image_url": {"url": DATA_URL, "detail": "auto"}},
    ]


def test_v1_a_model_without_vision_fails_the_run_saying_so(
    client: openai.OpenAI, openai_fake: OpenAIFake
) -> None:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": LINK}}]}]
    )
    assistant = client.beta.assistants.create(model=ROOMY)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )
    assert run.status == "failed"
    assert run.last_error is not None and run.last_error.code == "invalid_prompt"
    assert "does not take images" in run.last_error.message
    assert [m.role for m in client.beta.threads.messages.list(thread.id)] == ["user"]


def test_v1_bad_images_are_refused_before_anything_is_written(client: openai.OpenAI) -> None:
    notes = client.files.create(file=("notes.txt", b"plain text"), purpose="assistants")
    thread = client.beta.threads.create()

    def image(spec: dict[str, Any]) -> Any:
        return [{"type": "text", "text": "see"}, spec]

    cases: list[tuple[Any, type[Exception], str]] = [
        (
            image({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}),
            openai.BadRequestError,
            "content\\[1\\].image_url.url",
        ),
        (
            image({"type": "image_url", "image_url": {"url": "data:text/plain;base64,eA=="}}),
            openai.BadRequestError,
            "image_url.url",
        ),
        (
            image({"type": "image_url", "image_url": {"url": LINK, "detail": "max"}}),
            openai.BadRequestError,
            "detail",
        ),
        (
            image({"type": "image_file", "image_file": {"file_id": "file-" + "0" * 32}}),
            openai.NotFoundError,
            "file-0",
        ),
        (
            image({"type": "image_file", "image_file": {"file_id": notes.id}}),
            openai.BadRequestError,
            "not a png",
        ),
        (
            [{"type": "image_url", "image_url": {"url": LINK}}] * 11,
            openai.BadRequestError,
            "at most 10",
        ),
    ]
    for content, error, named in cases:
        with pytest.raises(error, match=named):
            client.beta.threads.messages.create(thread.id, role="user", content=content)
    with pytest.raises(openai.BadRequestError, match="only user messages"):
        client.beta.threads.messages.create(
            thread.id,
            role="assistant",
            content=image({"type": "image_url", "image_url": {"url": LINK}}),
        )
    assert client.beta.threads.messages.list(thread.id).data == []
    with pytest.raises(openai.BadRequestError, match="is not supported"):
        client.files.create(file=("notes.txt", b"text"), purpose="vision")
    with pytest.raises(openai.BadRequestError, match="not a png"):
        client.files.create(file=("fake.png", b"not an image"), purpose="vision")
