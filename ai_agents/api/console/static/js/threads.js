// Threads: list (by agent, active or archived), search, open, fork, archive.

import { all, v1 } from "./api.js";
import { h, clear, money, shortId, when } from "./dom.js";
import { guarded } from "./status.js";
import { startThread } from "./agents.js";

export async function forkThread(id) {
  const fork = await v1.post(`/threads/${id}/fork`, {});
  location.hash = `#/threads/${fork.id}`;
}

export async function setArchived(id, archived) {
  return v1.post(`/threads/${id}/${archived ? "archive" : "unarchive"}`, {});
}

export async function threadsView(main, filters = {}) {
  const agents = await all("/agents");
  const agentName = new Map(agents.map((a) => [a.id, a.name]));
  const threads = await all("/threads", {
    agent_id: filters.agent || undefined,
    archived: filters.archived ? "true" : "false",
  });

  const agentPick = h("select#thread-agent", { "aria-label": "Agent" },
    h("option", { value: "" }, "All agents"),
    agents.map((a) => h("option", { value: a.id, selected: a.id === filters.agent }, a.name)));
  const archived = h("input#thread-archived", { type: "checkbox", checked: filters.archived });
  const search = h("input#thread-search", {
    type: "search", placeholder: "Search title, id, user…", dataset: { focus: "" },
    value: filters.search ?? "", "aria-label": "Search threads",
  });
  const reload = () => threadsView(clear(main), {
    agent: agentPick.value, archived: archived.checked, search: search.value,
  });
  agentPick.addEventListener("change", reload);
  archived.addEventListener("change", reload);

  const open = (t) => { location.hash = `#/threads/${t.id}`; };
  const rows = threads.map((t) => {
    const row = h("tr.clickable", {
      tabindex: 0,
      dataset: { thread: t.id, text: [t.title, t.id, t.user_id, agentName.get(t.agent_id)].join(" ").toLowerCase() },
      onclick: (event) => { if (!event.target.closest("button")) open(t); },
      onkeydown: (event) => { if (event.key === "Enter") open(t); },
    },
      h("td", {}, t.title || h("span.muted", {}, `Thread ${shortId(t.id)}`),
        t.forked_from_id ? h("div.muted", {}, `fork of ${shortId(t.forked_from_id)}`) : null),
      h("td", {}, agentName.get(t.agent_id) ?? shortId(t.agent_id)),
      h("td", {}, t.user_id ?? ""),
      h("td.num", {}, t.message_count),
      h("td.num", {}, money(t.cost)),
      h("td", {}, when(t.last_used_at || t.updated_at)),
      h("td", {}, h("div.actions", {},
        h("button", { type: "button", onclick: () => guarded(() => forkThread(t.id)) }, "Fork"),
        h("button", {
          type: "button",
          onclick: () => guarded(async () => { await setArchived(t.id, !t.archived); reload(); }),
        }, t.archived ? "Unarchive" : "Archive"))),
    );
    return row;
  });
  const filter = () => {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const row of rows) row.hidden = !words.every((w) => row.dataset.text.includes(w));
  };
  search.addEventListener("input", filter);

  const newThread = h("button.primary#new-thread", {
    type: "button", dataset: { new: "" }, disabled: agents.length === 0,
    onclick: () => guarded(() => startThread(agentPick.value || agents[0].id)),
  }, "New thread ", h("kbd", {}, "n"));

  main.append(
    h("div.toolbar", {},
      h("h1", {}, "Threads"), search, agentPick,
      h("label", {}, archived, " archived"), newThread),
    threads.length
      ? h("table#threads", {},
        h("thead", {}, h("tr", {}, ["Thread", "Agent", "User", "Messages", "Cost", "Last used", ""].map(
          (t, i) => h(i === 3 || i === 4 ? "th.num" : "th", {}, t)))),
        h("tbody", {}, rows))
      : h("p.empty", {}, filters.archived ? "No archived threads." : "No threads yet: start one from an agent."),
  );
  filter();
  search.focus();
}
