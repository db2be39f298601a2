// Agents: the list, and one form to create or edit (provider and model from /models).

import { all, v1 } from "./api.js";
import { h, clear, when } from "./dom.js";
import { guarded } from "./status.js";

/** The built-in memory strategies (ai_agents/memory/strategies.py). */
export const MEMORY_STRATEGIES = ["last_messages", "first_last", "summarize", "vector"];

async function catalog() {
  const models = (await v1.get("/models")).data;
  const byProvider = new Map();
  for (const m of models) {
    if (m.deprecated) continue;
    if (!byProvider.has(m.provider)) byProvider.set(m.provider, []);
    byProvider.get(m.provider).push(m);
  }
  return byProvider;
}

function options(values, selected) {
  return values.map((v) => h("option", { value: v, selected: v === selected }, v));
}

function agentForm(byProvider, agent, onSaved, onCancel) {
  const providers = [...byProvider.keys()].sort();
  if (agent && !byProvider.has(agent.provider)) providers.push(agent.provider);
  const field = (name, el) => { el.name = name; el.id = `agent-${name}`; return el; };
  const name = field("name", h("input", { required: true, maxlength: 200, value: agent?.name ?? "" }));
  const role = field("role", h("textarea", { required: true, rows: 2 }));
  role.value = agent?.role ?? "";
  const instructions = field("instructions", h("textarea", { rows: 3 }));
  instructions.value = agent?.instructions ?? "";
  const provider = field("provider", h("select", { required: true },
    options(providers, agent?.provider ?? providers[0])));
  const model = field("model", h("select", { required: true }));
  const price = h("span.hint");
  const fillModels = (selected) => {
    const models = byProvider.get(provider.value) || [];
    const names = models.map((m) => m.model);
    if (selected && !names.includes(selected)) names.push(selected);
    clear(model).append(...options(names, selected ?? names[0]));
    showPrice();
  };
  const showPrice = () => {
    const m = (byProvider.get(provider.value) || []).find((x) => x.model === model.value);
    price.textContent = m
      ? `context ${m.context_window.toLocaleString()} tokens · $${m.cost_per_1m_input}/1M in · ` +
        `$${m.cost_per_1m_output}/1M out${m.supports_tools ? " · tools" : ""}`
      : "";
  };
  provider.addEventListener("change", () => fillModels());
  model.addEventListener("change", showPrice);
  fillModels(agent?.model);
  const tools = field("tools", h("input", { value: (agent?.tools ?? []).join(", "), placeholder: "e.g. search_documents, get_weather" }));
  const strategy = field("memory_strategy", h("select", {},
    options([...new Set([...MEMORY_STRATEGIES, agent?.memory_strategy].filter(Boolean))],
      agent?.memory_strategy ?? "last_messages")));
  const label = (el, text) => h("label", { for: el.id }, text);

  const form = h("form.grid#agent-form", {
    onsubmit: (event) => {
      event.preventDefault();
      guarded(async () => {
        const body = {
          name: name.value.trim(),
          role: role.value.trim(),
          instructions: instructions.value.trim() || null,
          provider: provider.value,
          model: model.value,
          tools: tools.value.split(",").map((t) => t.trim()).filter(Boolean),
          memory_strategy: strategy.value,
        };
        const saved = agent ? await v1.patch(`/agents/${agent.id}`, body) : await v1.post("/agents", body);
        onSaved(saved);
      });
    },
  },
    label(name, "Name"), name,
    label(role, "Role"), role,
    label(instructions, "Instructions"), instructions,
    label(provider, "Provider"), provider,
    label(model, "Model"), model, price,
    label(tools, "Tools"), tools, h("span.hint", {}, "Server tool names, comma-separated."),
    label(strategy, "Memory strategy"), strategy,
    h("div.buttons", {},
      h("button.primary", { type: "submit" }, agent ? "Save" : "Create agent"),
      h("button", { type: "button", onclick: onCancel }, "Cancel")),
  );
  return form;
}

export async function startThread(agentId) {
  const thread = await v1.post("/threads", { agent_id: agentId });
  location.hash = `#/threads/${thread.id}`;
}

export async function agentsView(main) {
  const [agents, byProvider] = await Promise.all([all("/agents"), catalog()]);
  const formSlot = h("div");
  const showForm = (agent) => {
    clear(formSlot).append(agentForm(byProvider, agent, () => agentsView(clear(main)), () => clear(formSlot)));
    formSlot.querySelector("input").focus();
  };
  const rows = agents.map((a) => h("tr", { dataset: { agent: a.id } },
    h("td", {}, h("b", {}, a.name), h("div.muted", {}, a.role.slice(0, 80))),
    h("td.mono", {}, `${a.provider}/${a.model}`),
    h("td", {}, a.tools.join(", ") || h("span.muted", {}, "none")),
    h("td", {}, a.memory_strategy),
    h("td", {}, when(a.created_at)),
    h("td", {}, h("div.actions", {},
      h("button", { type: "button", onclick: () => guarded(() => startThread(a.id)) }, "Chat"),
      h("button", { type: "button", onclick: () => showForm(a) }, "Edit"))),
  ));
  main.append(
    h("div.toolbar", {},
      h("h1", {}, "Agents"),
      h("button.primary#new-agent", { type: "button", dataset: { new: "" }, onclick: () => showForm(null) },
        "New agent ", h("kbd", {}, "n"))),
    formSlot,
    agents.length
      ? h("table#agents", {},
        h("thead", {}, h("tr", {}, ["Agent", "Model", "Tools", "Memory", "Created", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, rows))
      : h("p.empty", {}, "No agents yet: create one."),
  );
}
