"""``/v1/models``: the models a key's tenant may call, as OpenAI ``model`` objects.

The list is the model registry (the built-in catalog, a loaded models file, registered
providers' models) without deprecated models, limited to the providers enabled for the
tenant. Ids are the names ``/v1`` accepts back as ``model``
(:func:`~api.compat.catalog.public_model_name`: ``gpt-5.4``, ``anthropic/claude-...``,
``ollama/llama3.2``); ``owned_by`` is the provider. The registry records no release
dates, so ``created`` is 0. Retrieving a deprecated model still works (calls to it are
still accepted); an id that resolves to no registered model, or to a provider the tenant
may not use, is a 404.
"""

from __future__ import annotations

from typing import Any

from litestar import get

from ai_agents.api.auth import Principal
from ai_agents.api.compat.catalog import public_model_name, resolve_model
from ai_agents.errors import NotFoundError, ValidationError
from ai_agents.providers.factory import ProviderFactory
from ai_agents.providers.registry import get_registry

TAGS = ["openai: models"]
#: ``created`` of every model: the registry does not know when a model was released.
UNKNOWN_CREATED = 0


def model_object(provider: str, model: str) -> dict[str, Any]:
    return {
        "id": public_model_name(provider, model),
        "object": "model",
        "created": UNKNOWN_CREATED,
        "owned_by": provider,
    }


def _usable(providers: ProviderFactory, provider: str, tenant: str) -> bool:
    """Whether *tenant* may call *provider* (listing only what a call would accept)."""
    try:
        providers.check(provider, tenant=tenant)
    except ValidationError:
        return False
    return True


@get("/models", tags=TAGS, summary="List models")
async def list_models(principal: Principal) -> dict[str, Any]:
    providers = principal.tenant_store.runner.providers
    allowed: dict[str, bool] = {}
    data = []
    for entry in get_registry().models(include_deprecated=False):
        if entry.provider not in allowed:
            allowed[entry.provider] = _usable(providers, entry.provider, principal.tenant_id)
        if allowed[entry.provider]:
            data.append(model_object(entry.provider, entry.model))
    return {"object": "list", "data": data}


@get("/models/{model_id:path}", tags=TAGS, summary="Retrieve a model")
async def retrieve_model(model_id: str, principal: Principal) -> dict[str, Any]:
    # A path parameter keeps its leading slash; ids such as "ollama/llama3.2" have one more.
    name = model_id.lstrip("/")
    try:
        provider, model = resolve_model(name)
    except ValidationError:
        raise NotFoundError("model", name) from None
    registered = get_registry().resolve(provider, model)
    providers = principal.tenant_store.runner.providers
    if registered is None or not _usable(providers, provider, principal.tenant_id):
        raise NotFoundError("model", name)
    return model_object(provider, registered)


HANDLERS = [list_models, retrieve_model]
