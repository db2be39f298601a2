"""What the ``/v1`` tests share: the test model, the server and the official SDK's client.

``serve_compat(settings, providers)`` serves the app with the ``scripted/roomy`` test
model registered (roomy: a context window no test fills); ``sdk(api, tenant)`` is the
unchanged ``openai.AsyncOpenAI`` client of a new key of *tenant*, without retries (a
test sees the first answer); :class:`Gate` is a slow model the test releases.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import openai

from ai_agents.api.config import ApiConfig
from ai_agents.api.testing import RunningApi, running_api
from ai_agents.config import Settings
from ai_agents.providers.base import Provider, ProviderRequest
from ai_agents.providers.registry import ModelLimits, get_registry

#: The test model ``/v1`` requests name (``provider/model``).
ROOMY = "scripted/roomy"


def register_roomy() -> None:
    get_registry().register(
        "scripted", "roomy", ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 3, 15)
    )


@contextmanager
def serve_compat(settings: Settings, providers: Mapping[str, Provider]) -> Iterator[RunningApi]:
    register_roomy()
    with running_api(settings, providers=providers, config=ApiConfig(key_cache_ttl=60)) as running:
        yield running


def sdk(api: RunningApi, tenant: str = "acme") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{api.url}/v1", api_key=api.create_key(tenant), max_retries=0
    )


class Gate:
    """A model call that waits until the test opens the gate (a slow model)."""

    def __init__(self, reply: str = "finally") -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.reply = reply

    async def __call__(self, request: ProviderRequest) -> str:
        self.entered.set()
        while not self.opened.is_set():
            await asyncio.sleep(0.01)
        return self.reply

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, 10), "the model was never called"
