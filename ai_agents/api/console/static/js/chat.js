// A thread's conversation: its messages (with usage and cost), and a composer that streams
// a run: text as it comes, tool calls and their results, the run's steps, and a form for
// the outputs of client tools when the run stops in requires_action.

import { stream, v1 } from "./api.js";
import { h, clear, money, shortId } from "./dom.js";
import { guarded, report } from "./status.js";
import { forkThread, setArchived } from "./threads.js";

async function allMessages(threadId) {
  const messages = [];
  let after;
  for (;;) {
    const page = await v1.get(`/threads/${threadId}/messages`, { limit: 200, after });
    messages.push(...page.data);
    if (!page.has_more || page.next_cursor === null) return messages;
    after = page.next_cursor;
  }
}

function usageLine(m) {
  const parts = [];
  if (m.model) parts.push(`${m.provider ? m.provider + "/" : ""}${m.model}`);
  if (m.input_tokens !== null && m.input_tokens !== undefined) {
    parts.push(`${m.input_tokens} in / ${m.output_tokens} out tokens`);
  }
  if (m.cost !== null && m.cost !== undefined) parts.push(money(m.cost));
  return parts.join(" · ");
}

function toolBlock(call, pending = "running…") {
  const result = h("span.result", {}, pending);
  const block = h("div.tool", { dataset: { call: call.id } },
    h("b", {}, `tool call: ${call.name}`), `(${JSON.stringify(call.arguments ?? {})})`, result);
  block.setResult = (text, isError) => {
    result.textContent = `→ ${text}`;
    block.classList.toggle("error", Boolean(isError));
  };
  return block;
}

function messageBubble(role, text) {
  return h(`div.msg.${role}`, {}, h("span.who", {}, role), h("span.text", {}, text ?? ""));
}

function renderHistory(list, messages) {
  const calls = new Map();
  for (const m of messages) {
    if (m.role === "tool") {
      const block = calls.get(m.tool_call_id);
      if (block) block.setResult(m.content ?? "", m.metadata && m.metadata.is_error);
      else list.append(h("div.tool", {}, `${m.tool_name ?? "tool"} → ${m.content ?? ""}`));
      continue;
    }
    if (m.content || m.role !== "assistant" || !m.tool_calls.length) {
      const bubble = messageBubble(m.role, m.content);
      const line = m.role === "assistant" ? usageLine(m) : "";
      if (line) bubble.append(h("span.meta", {}, line));
      list.append(bubble);
    }
    for (const call of m.tool_calls) {
      const block = toolBlock(call, "");
      calls.set(call.id, block);
      list.append(block);
    }
  }
}

async function showSteps(runId, slot) {
  const steps = (await v1.get(`/runs/${runId}/steps`)).data;
  clear(slot).append(h("table.steps", {},
    h("thead", {}, h("tr", {}, ["#", "Step", "Status", "Model", "Tokens", "Cost", "Details"].map((t) => h("th", {}, t)))),
    h("tbody", {}, steps.map((s) => h("tr", {},
      h("td", {}, s.seq), h("td", {}, s.type), h("td", {}, s.status),
      h("td.mono", {}, s.model ?? ""),
      h("td.num", {}, `${s.usage.input_tokens}/${s.usage.output_tokens}`),
      h("td.num", {}, money(s.cost)),
      h("td", {}, h("code", {}, JSON.stringify(s.details).slice(0, 160))))))));
}

/** Consume one streamed run (or resumption) into *turn*, a container in the list. */
async function runInto(turn, path, body, scroll) {
  let bubble = null;
  const blocks = new Map();
  const ensureBubble = () => {
    if (!bubble) { bubble = messageBubble("assistant", ""); turn.append(bubble); }
    return bubble;
  };
  let finished = null;
  await stream(path, body, (name, data) => {
    if (name === "text_delta") {
      ensureBubble().querySelector(".text").append(data.text);
    } else if (name === "tool_call") {
      const block = toolBlock(data);
      blocks.set(data.id, block);
      turn.append(block);
      bubble = null; // text after the call goes into a new bubble
    } else if (name === "tool_result") {
      blocks.get(data.id)?.setResult(data.result, data.is_error);
    } else if (name === "error") {
      turn.append(h("div.msg.system.error", {}, `${data.code}: ${data.message}`));
    } else if (name === "done") {
      finished = data;
    }
    scroll();
  });
  if (!finished) return;
  const target = ensureBubble();
  const slot = h("div.steps-slot");
  target.append(h("span.meta", {},
    `${finished.provider}/${finished.model} · ${finished.usage.input_tokens} in / ` +
    `${finished.usage.output_tokens} out tokens · ${money(finished.cost)} · ${finished.status} `,
    h("button", { type: "button", onclick: () => guarded(() => showSteps(finished.run_id, slot)) }, "Steps")),
  slot);
  if (finished.status === "requires_action") turn.append(actionForm(turn, finished, scroll));
}

function actionForm(turn, response, scroll) {
  const outputs = response.required_action.map((call) => {
    const area = h("textarea", { rows: 2, required: true, id: `output-${call.id}` });
    return { call, area };
  });
  const form = h("form.action-form", {
    onsubmit: (event) => {
      event.preventDefault();
      form.remove();
      const body = { tool_outputs: outputs.map(({ call, area }) => ({ tool_call_id: call.id, output: area.value })) };
      guarded(() => runInto(turn, `/runs/${response.run_id}/tool_outputs`, body, scroll));
    },
  },
    h("b", {}, "The run needs the outputs of client tools (requires_action)"),
    outputs.map(({ call, area }) => [
      h("label", { for: area.id }, `${call.name}(${JSON.stringify(call.arguments)})`), area]),
    h("p", {}, h("button.primary", { type: "submit" }, "Submit outputs")));
  return form;
}

export async function chatView(main, threadId) {
  const thread = await v1.get(`/threads/${threadId}`);
  const [agent, messages] = await Promise.all([v1.get(`/agents/${thread.agent_id}`), allMessages(threadId)]);
  const list = h("div.chat#messages");
  renderHistory(list, messages);
  const scroll = () => list.lastElementChild?.scrollIntoView({ block: "end" });

  const input = h("textarea#message", { rows: 2, placeholder: "Message… (Enter to send)", dataset: { focus: "" }, "aria-label": "Message" });
  const send = h("button.primary#send", { type: "submit" }, "Send");
  const composer = h("form.composer", {
    onsubmit: async (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      send.disabled = true;
      list.append(messageBubble("user", text));
      const turn = h("div.chat.turn");
      list.append(turn);
      scroll();
      try {
        await runInto(turn, `/threads/${threadId}/runs`, { input: text }, scroll);
      } catch (error) {
        report(error);
      } finally {
        send.disabled = false;
        input.focus();
      }
    },
  }, input, send);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); composer.requestSubmit(); }
  });

  main.append(
    h("div.toolbar", {},
      h("h1", {}, thread.title || `Thread ${shortId(thread.id)}`),
      h("span.muted", {}, `${agent.name} · ${agent.provider}/${agent.model} · ${money(thread.cost)} so far`),
      h("button", { type: "button", onclick: () => guarded(() => forkThread(thread.id)) }, "Fork"),
      h("button", {
        type: "button",
        onclick: () => guarded(async () => { await setArchived(thread.id, !thread.archived); location.hash = "#/threads"; }),
      }, thread.archived ? "Unarchive" : "Archive"),
      h("a.button", { href: "#/threads" }, "All threads")),
    list,
    composer,
  );
  scroll();
  input.focus();
}
