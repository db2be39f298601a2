"""``file_search`` through the official ``openai`` SDK, unchanged, against a running server
whose ``openai`` provider is the strict fake of OpenAI's Chat Completions API: files
uploaded, indexed into a vector store, attached to an assistant or a thread
(``tool_resources``); the model calls ``file_search``, the passages reach it with their
refs, the run step records the search (passages with ``include[]``), and the answer's
refs become ``file_citation`` annotations naming the file. Stores are searched only when
attached, and only the caller's tenant's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.lib.streaming import AssistantEventHandler
from openai.types.beta import Assistant, Thread
from openai.types.beta.threads import Message, Run
from openai.types.beta.threads.runs import RunStep, ToolCall

from ai_agents.api.testing import RunningApi, running_api
from ai_agents.config import Settings
from ai_agents.embeddings import HashingEmbedder
from ai_agents.files.search import citation_ref
from ai_agents.providers.base import ProviderSettings
from ai_agents.providers.openai import OpenAIChatProvider
from ai_agents.rag.service import DocumentService
from ai_agents.rag.setup import enable_documents
from ai_agents.tools.registry import ToolRegistry
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Reply, call
from tests.fakes.server import serve
from tests.openai_shapes import conforms

pytestmark = [
    pytest.mark.integration,
    # The SDK marks the Assistants API deprecated (OpenAI shut it down): that is the point.
    pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning"),
]

MODEL = "gpt-5.4"
TENANT = "acme"
HANDBOOK = Path(__file__).resolve().parents[1] / "data" / "handbook"
CONTENT = "step_details.tool_calls[*].file_search.results[*].content"
POLL_MS = 50


@pytest.fixture(scope="module")
def vendor() -> Iterator[tuple[OpenAIFake, str]]:
    fake = OpenAIFake(api_key="sk-vendor")
    with serve(fake) as url:
        yield fake, url + "/v1"


@pytest.fixture
def fake(vendor: tuple[OpenAIFake, str]) -> OpenAIFake:
    vendor[0].script.reset()
    return vendor[0]


@pytest.fixture
def api(
    settings: Settings, redis_cleanup: None, vendor: tuple[OpenAIFake, str], fake: OpenAIFake
) -> Iterator[RunningApi]:
    upstream = OpenAIChatProvider(ProviderSettings(base_url=vendor[1], api_key="sk-vendor"))
    with running_api(settings, providers={"openai": upstream}) as running:
        enable_documents(
            running.store, embedder=HashingEmbedder(), registry=ToolRegistry(), share_embedder=False
        )
        yield running


def sdk(api: RunningApi, tenant: str = TENANT) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{api.url}/v1", api_key=api.create_key(tenant), max_retries=0, timeout=30
    )


@pytest.fixture
def client(api: RunningApi) -> Iterator[openai.OpenAI]:
    with sdk(api) as c:
        yield c


def upload(client: openai.OpenAI, name: str) -> str:
    made = client.files.create(file=(name, (HANDBOOK / name).read_bytes()), purpose="assistants")
    return made.id


def vector_store(client: openai.OpenAI, *names: str) -> tuple[str, dict[str, str]]:
    """A vector store indexing the handbook files *names*; its id and the file ids."""
    files = {name: upload(client, name) for name in names}
    store = client.vector_stores.create(name="handbook", file_ids=list(files.values()))
    assert store.file_counts.completed == len(names), store
    return store.id, files


def top_ref(api: RunningApi, store_id: str, query: str) -> tuple[str, str]:
    """The ref and file id of the passage a search of the store ranks first (the
    deterministic embedder makes it the one file_search gives the model first)."""
    service = api.store.extensions["documents"]
    assert isinstance(service, DocumentService)
    hits = api.call(service.search(TENANT, query, entity_id=store_id, top_k=1))
    chunk = hits[0].chunk
    return citation_ref(chunk.source, chunk.position, chunk.title or ""), chunk.source


def raw(response: Any) -> Any:
    return response.http_response.json()


def searcher(client: openai.OpenAI, **fields: Any) -> Assistant:
    made = client.beta.assistants.with_raw_response.create(
        model=MODEL, instructions="Answer from the files.", **fields
    )
    return conforms(Assistant, raw(made))


def tool_message(request: dict[str, Any]) -> dict[str, Any]:
    (found,) = [m for m in request["messages"] if m["role"] == "tool"]
    return found  # type: ignore[no-any-return]


def test_file_search_answer_cites_the_file(
    client: openai.OpenAI, api: RunningApi, fake: OpenAIFake
) -> None:
    store_id, files = vector_store(client, "pets.md", "parking.html", "quiet-hours.md")
    query = "Are dogs and cats allowed? pet fee"
    ref, cited = top_ref(api, store_id, query)
    assert cited == files["pets.md"]
    assistant = searcher(
        client,
        tools=[{"type": "file_search", "file_search": {"max_num_results": 2}}],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}},
    )
    assert assistant.tool_resources is not None and assistant.tool_resources.file_search
    assert assistant.tool_resources.file_search.vector_store_ids == [store_id]
    assert assistant.tools[0].type == "file_search"
    fake.script.push(
        Reply.tool_calls(call("file_search", {"query": query})),
        Reply.text(f"Pets are welcome{ref}."),
    )
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Can I bring my dog?"}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )
    assert run.status == "completed", run.last_error
    conforms(
        Run, raw(client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=thread.id))
    )

    # The vendor was offered the tool, and got the passages with their refs as the result
    # of the call it made.
    offered = [t["function"]["name"] for t in fake.requests[0]["tools"]]
    assert offered == ["file_search"]
    assert fake.requests[0]["tools"][0]["function"]["parameters"]["required"] == ["query"]
    result = tool_message(fake.requests[1])
    output = json.loads(result["content"])
    assert [r["file_id"] for r in output["results"]][:1] == [files["pets.md"]]
    assert len(output["results"]) == 2  # max_num_results
    assert output["results"][0]["ref"] == ref
    assert "dog" in output["results"][0]["content"].lower()

    # The answer: the ref left in the text, annotated with the file it names.
    listed = client.beta.threads.messages.with_raw_response.list(thread_id=thread.id, order="desc")
    answer = conforms(Message, raw(listed)["data"][0])
    text = answer.content[0].text  # type: ignore[union-attr]
    assert text.value == f"Pets are welcome{ref}."
    (annotation,) = text.annotations
    assert annotation.type == "file_citation"
    assert annotation.file_citation.file_id == files["pets.md"]  # type: ignore[union-attr]
    assert annotation.text == ref
    assert text.value[annotation.start_index : annotation.end_index] == ref
    same = client.beta.threads.messages.retrieve(answer.id, thread_id=thread.id)
    assert same.content[0].text.annotations == text.annotations  # type: ignore[union-attr]

    # The run step records the search; the passages only when include[] asks for them.
    steps = raw(
        client.beta.threads.runs.steps.with_raw_response.list(
            run.id, thread_id=thread.id, order="asc"
        )
    )
    tool_step = conforms(RunStep, steps["data"][0])
    assert tool_step.step_details.type == "tool_calls"
    (search,) = tool_step.step_details.tool_calls  # type: ignore[union-attr]
    assert search.type == "file_search"
    results = search.file_search.results  # type: ignore[union-attr]
    assert results is not None and [r.file_id for r in results][:1] == [files["pets.md"]]
    assert results[0].file_name == "pets.md" and 0 <= results[0].score <= 1
    assert results[0].content is None
    assert search.file_search.ranking_options is not None  # type: ignore[union-attr]
    detailed = client.beta.threads.runs.steps.retrieve(
        tool_step.id, thread_id=thread.id, run_id=run.id, include=[CONTENT]
    )
    (search,) = detailed.step_details.tool_calls  # type: ignore[union-attr]
    content = search.file_search.results[0].content  # type: ignore[union-attr, index]
    assert content is not None and content[0].text == output["results"][0]["content"]


def test_a_ref_the_run_never_received_is_not_annotated(
    client: openai.OpenAI, api: RunningApi, fake: OpenAIFake
) -> None:
    store_id, files = vector_store(client, "pets.md")
    invented = citation_ref(files["pets.md"], 99, "pets.md")
    assistant = searcher(
        client,
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}},
    )
    fake.script.push(Reply.text(f"Without searching{invented}."))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Pets?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )
    assert run.status == "completed"
    answer = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert answer.content[0].text.annotations == []  # type: ignore[union-attr]


def test_thread_resources_and_the_vector_stores_helper(
    client: openai.OpenAI, api: RunningApi, fake: OpenAIFake
) -> None:
    """Create-and-run with a thread whose store is made from files on the fly; the
    assistant has the tool but no store: only the thread's store is searched."""
    other_store, _ = vector_store(client, "parking.html")
    wifi = upload(client, "wifi-and-technology.txt")
    assistant = searcher(client, tools=[{"type": "file_search"}])
    assert assistant.tool_resources is not None and assistant.tool_resources.file_search is None
    fake.script.push(
        Reply.tool_calls(call("file_search", {"query": "wifi password network parking"})),
        Reply.text("The network is listed in the guide."),
    )
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={
            "messages": [{"role": "user", "content": "What is the wifi password?"}],
            "tool_resources": {"file_search": {"vector_stores": [{"file_ids": [wifi]}]}},
        },
        poll_interval_ms=POLL_MS,
    )
    assert run.status == "completed", run.last_error
    thread = conforms(Thread, raw(client.beta.threads.with_raw_response.retrieve(run.thread_id)))
    assert thread.tool_resources is not None and thread.tool_resources.file_search is not None
    (made,) = thread.tool_resources.file_search.vector_store_ids or []
    assert made != other_store
    assert client.vector_stores.retrieve(made).file_counts.completed == 1
    output = json.loads(tool_message(fake.requests[1])["content"])
    assert output["results"] and {r["file_id"] for r in output["results"]} == {wifi}
    assert thread.metadata == {}  # the resources are not shown as metadata

    # Modifying the thread's resources replaces them; metadata alone keeps them.
    client.beta.threads.update(run.thread_id, metadata={"k": "v"})
    kept = client.beta.threads.retrieve(run.thread_id)
    assert kept.tool_resources.file_search.vector_store_ids == [made]  # type: ignore[union-attr]
    assert kept.metadata == {"k": "v"}
    client.beta.threads.update(
        run.thread_id, tool_resources={"file_search": {"vector_store_ids": [other_store]}}
    )
    moved = client.beta.threads.retrieve(run.thread_id)
    assert moved.tool_resources.file_search.vector_store_ids == [other_store]  # type: ignore[union-attr]
    assert moved.metadata == {"k": "v"}


def test_without_the_tool_no_search_is_offered(
    client: openai.OpenAI, api: RunningApi, fake: OpenAIFake
) -> None:
    """A run whose ``tools`` override leaves file_search out does not offer it, even with
    the assistant's store attached; one that names it does."""
    store_id, _ = vector_store(client, "pets.md")
    assistant = searcher(
        client,
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}},
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Pets?"}])
    fake.script.push(Reply.text("No tools here."))
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tools=[], poll_interval_ms=POLL_MS
    )
    assert run.status == "completed" and run.tools == []
    assert "tools" not in fake.requests[-1]
    fake.script.push(Reply.text("Searching is possible."))
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        tools=[{"type": "file_search"}],
        tool_choice={"type": "file_search"},
        poll_interval_ms=POLL_MS,
    )
    assert run.status == "completed"
    assert [t.type for t in run.tools] == ["file_search"]
    assert run.tool_choice.type == "file_search"  # type: ignore[union-attr]
    sent = fake.requests[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["file_search"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "file_search"}}


def test_streamed_search_and_citation(
    client: openai.OpenAI, api: RunningApi, fake: OpenAIFake
) -> None:
    store_id, files = vector_store(client, "pets.md", "laundry.txt")
    query = "dogs cats pets fee"
    ref, _ = top_ref(api, store_id, query)
    assistant = searcher(
        client,
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}},
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Dogs?"}])
    fake.script.push(
        Reply.tool_calls(call("file_search", {"query": query})),
        Reply.text(f"Yes{ref}, with a fee."),
    )

    class Handler(AssistantEventHandler):
        def __init__(self) -> None:
            super().__init__()
            self.created: list[ToolCall] = []
            self.done: list[ToolCall] = []

        def on_tool_call_created(self, tool_call: ToolCall) -> None:
            self.created.append(tool_call)

        def on_tool_call_done(self, tool_call: ToolCall) -> None:
            self.done.append(tool_call)

    handler = Handler()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()
    assert [c.type for c in handler.created] == ["file_search"]
    # The SDK reports a call done at its step's end and again at the run's end.
    assert {c.id for c in handler.done} == {handler.created[0].id}
    done = handler.done[-1]
    assert done.type == "file_search"
    assert done.file_search.results and done.file_search.results[0].file_id == files["pets.md"]
    final = handler.get_final_messages()[-1]
    (annotation,) = final.content[0].text.annotations  # type: ignore[union-attr]
    assert annotation.file_citation.file_id == files["pets.md"]  # type: ignore[union-attr]


def test_resources_are_checked_before_anything_is_written(
    client: openai.OpenAI, api: RunningApi
) -> None:
    store_id, files = vector_store(client, "pets.md")
    with sdk(api, "globex") as other:
        foreign, _ = vector_store(other, "laundry.txt")
        with pytest.raises(openai.NotFoundError, match=store_id):
            other.beta.assistants.create(
                model=MODEL,
                tools=[{"type": "file_search"}],
                tool_resources={"file_search": {"vector_store_ids": [store_id]}},
            )
    with pytest.raises(openai.NotFoundError, match=foreign):
        client.beta.threads.create(tool_resources={"file_search": {"vector_store_ids": [foreign]}})
    refused: list[tuple[dict[str, Any], str]] = [
        ({"tools": [{"type": "code_interpreter"}]}, "code_interpreter"),
        (
            {"tools": [{"type": "file_search", "file_search": {"max_num_results": 51}}]},
            "max_num_results",
        ),
        (
            {
                "tools": [
                    {
                        "type": "file_search",
                        "file_search": {"ranking_options": {"ranker": "x", "score_threshold": 0}},
                    }
                ]
            },
            "ranker",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "file_search"}}]},
            "file_search",
        ),
        (
            {"tool_resources": {"file_search": {"vector_store_ids": [store_id, store_id]}}},
            "at most 1",
        ),
        (
            {"tool_resources": {"code_interpreter": {"file_ids": [files["pets.md"]]}}},
            "code_interpreter",
        ),
        (
            {
                "tool_resources": {
                    "file_search": {"vector_stores": [{"file_ids": ["file-" + "0" * 32]}]}
                }
            },
            "file-",
        ),
    ]
    before = len(client.vector_stores.list().data)
    for body, named in refused:
        with pytest.raises((openai.BadRequestError, openai.NotFoundError), match=named):
            client.beta.assistants.create(model=MODEL, **body)
    assert client.beta.assistants.list().data == []
    assert len(client.vector_stores.list().data) == before  # the helper made no store


def test_attachments_go_to_the_threads_vector_store(
    client: openai.OpenAI, api: RunningApi, fake: OpenAIFake
) -> None:
    """A message attaching a file for file_search: the thread gets a vector store holding
    it (one store, reused by the next attachment), the message shows its attachments,
    and the run's search finds the file."""
    pets, laundry = upload(client, "pets.md"), upload(client, "laundry.txt")
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "Read this.",
                "attachments": [{"file_id": pets, "tools": [{"type": "file_search"}]}],
            }
        ]
    )
    assert thread.tool_resources is not None
    made = client.beta.threads.retrieve(thread.id).tool_resources
    assert made is not None and made.file_search is not None
    (store_id,) = made.file_search.vector_store_ids or []
    listed = client.beta.threads.messages.with_raw_response.list(thread_id=thread.id)
    first = conforms(Message, raw(listed)["data"][0])
    assert [(a.file_id, [t.type for t in a.tools or []]) for a in first.attachments or []] == [
        (pets, ["file_search"])
    ]
    assert first.metadata == {}

    added = client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="And this.",
        attachments=[{"file_id": laundry, "tools": [{"type": "file_search"}]}],
        metadata={"k": "v"},
    )
    assert added.attachments and added.attachments[0].file_id == laundry
    again = client.beta.threads.retrieve(thread.id).tool_resources
    assert again is not None and again.file_search is not None
    assert again.file_search.vector_store_ids == [store_id]  # the same store
    in_store = {f.id for f in client.vector_stores.files.list(store_id)}
    assert in_store == {pets, laundry}
    # Modifying the message's metadata keeps its attachments.
    client.beta.threads.messages.update(added.id, thread_id=thread.id, metadata={"k": "w"})
    kept = client.beta.threads.messages.retrieve(added.id, thread_id=thread.id)
    assert kept.attachments and kept.attachments[0].file_id == laundry

    assistant = searcher(client, tools=[{"type": "file_search"}])
    fake.script.push(
        Reply.tool_calls(call("file_search", {"query": "washing machine detergent laundry"})),
        Reply.text("See the laundry notes."),
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )
    assert run.status == "completed", run.last_error
    output = json.loads(tool_message(fake.requests[1])["content"])
    assert laundry in {r["file_id"] for r in output["results"]}


def test_concurrent_attachments_share_one_store(client: openai.OpenAI) -> None:
    """Messages attaching files to a thread without a store, all at once: one store is
    made, the thread names it and it holds every file (none went to an orphaned store)."""
    names = ["pets.md", "laundry.txt", "pets.md", "laundry.txt", "pets.md", "laundry.txt"]
    files = [upload(client, name) for name in names]
    thread = client.beta.threads.create()

    def attach(file_id: str) -> None:
        client.beta.threads.messages.create(
            thread.id,
            role="user",
            content="Read this.",
            attachments=[{"file_id": file_id, "tools": [{"type": "file_search"}]}],
        )

    with ThreadPoolExecutor(len(files)) as pool:
        list(pool.map(attach, files))
    resources = client.beta.threads.retrieve(thread.id).tool_resources
    assert resources is not None and resources.file_search is not None
    (store_id,) = resources.file_search.vector_store_ids or []
    made = [s.id for s in client.vector_stores.list(limit=100) if s.name.startswith("files of")]
    assert made == [store_id]
    assert {f.id for f in client.vector_stores.files.list(store_id, limit=100)} == set(files)


def test_bad_attachments_are_refused_before_anything_is_written(
    client: openai.OpenAI, api: RunningApi
) -> None:
    pets = upload(client, "pets.md")
    thread = client.beta.threads.create()
    with sdk(api, "globex") as other:
        foreign = upload(other, "laundry.txt")
    cases: list[tuple[Any, type[Exception], str]] = [
        ([{"file_id": foreign, "tools": [{"type": "file_search"}]}], openai.NotFoundError, foreign),
        (
            [{"file_id": pets, "tools": [{"type": "code_interpreter"}]}],
            openai.BadRequestError,
            "code_interpreter",
        ),
        ([{"file_id": pets, "tools": [{"type": "web"}]}], openai.BadRequestError, "file_search"),
        ([{"file": pets}], openai.BadRequestError, "attachments"),
    ]
    for value, error, named in cases:
        with pytest.raises(error, match=named):
            client.beta.threads.messages.create(
                thread.id, role="user", content="x", attachments=value
            )
        with pytest.raises(error, match=named):
            client.beta.threads.create(
                messages=[{"role": "user", "content": "x", "attachments": value}]
            )
    assert client.beta.threads.messages.list(thread.id).data == []
    assert client.vector_stores.list().data == []
    stays = client.beta.threads.retrieve(thread.id).tool_resources
    assert stays is None or stays.file_search is None
