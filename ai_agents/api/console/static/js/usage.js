// Usage and cost over time, from the runs of the tenant's threads: per day, grouped by
// agent, model or tenant, as a stacked bar chart and a table of totals.

import { all } from "./api.js";
import { h, clear, money } from "./dom.js";
import { stackedBars, PALETTE } from "./chart.js";

const MAX_THREADS = 500;
const MAX_RUNS_PER_THREAD = 500;

export async function runsOf(threads) {
  const runs = [];
  const queue = [...threads];
  const worker = async () => {
    while (queue.length) {
      const thread = queue.shift();
      runs.push(...await all(`/threads/${thread.id}/runs`, {}, MAX_RUNS_PER_THREAD));
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  return runs;
}

function dayOf(run) {
  return (run.completed_at || run.created_at || "").slice(0, 10);
}

function daysBetween(first, last) {
  const days = [];
  for (let d = new Date(first + "T00:00:00Z"); d <= new Date(last + "T00:00:00Z"); d.setUTCDate(d.getUTCDate() + 1)) {
    days.push(d.toISOString().slice(0, 10));
  }
  return days;
}

export async function usageView(main) {
  const agents = await all("/agents", { include_inactive: "true" });
  const agentName = new Map(agents.map((a) => [a.id, a.name]));
  const threads = [
    ...await all("/threads", {}, MAX_THREADS),
    ...await all("/threads", { archived: "true" }, MAX_THREADS),
  ];
  const runs = (await runsOf(threads)).filter((r) => dayOf(r));
  const groupBy = h("select#usage-group", { "aria-label": "Group by" },
    h("option", { value: "agent" }, "by agent"),
    h("option", { value: "model" }, "by model"),
    h("option", { value: "tenant" }, "by tenant"));
  const metric = h("select#usage-metric", { "aria-label": "Metric" },
    h("option", { value: "cost" }, "cost (USD)"),
    h("option", { value: "tokens" }, "tokens"));
  const body = h("div#usage-body");
  const draw = () => render(clear(body), runs, groupBy.value, metric.value, agentName);
  groupBy.addEventListener("change", draw);
  metric.addEventListener("change", draw);
  main.append(h("div.toolbar", {}, h("h1", {}, "Usage and cost"), groupBy, metric), body);
  draw();
}

function render(body, runs, groupBy, metric, agentName) {
  const totalCost = runs.reduce((s, r) => s + r.cost, 0);
  const totalTokens = runs.reduce((s, r) => s + r.usage.total_tokens, 0);
  body.append(h("div.cards", {},
    h("div.card#usage-total-cost", { dataset: { usd: totalCost } }, h("b", {}, money(totalCost)), "cost"),
    h("div.card", {}, h("b", {}, totalTokens.toLocaleString()), "tokens"),
    h("div.card", {}, h("b", {}, runs.length), "runs")));
  if (!runs.length) {
    body.append(h("p.empty", {}, "No runs yet: usage shows here once an agent has answered."));
    return;
  }
  const keyOf = {
    agent: (r) => agentName.get(r.agent_id) ?? r.agent_id.slice(0, 8),
    model: (r) => `${r.provider ?? "?"}/${r.model ?? "?"}`,
    tenant: (r) => r.tenant_id,
  }[groupBy];
  const valueOf = metric === "cost" ? (r) => r.cost : (r) => r.usage.total_tokens;
  const format = metric === "cost" ? money : (n) => Math.round(n).toLocaleString();
  const groups = new Map();
  for (const r of runs) {
    const key = keyOf(r);
    if (!groups.has(key)) groups.set(key, { name: key, values: {}, runs: 0, input: 0, output: 0, cost: 0 });
    const g = groups.get(key);
    const day = dayOf(r);
    g.values[day] = (g.values[day] || 0) + valueOf(r);
    g.runs += 1;
    g.input += r.usage.input_tokens;
    g.output += r.usage.output_tokens;
    g.cost += r.cost;
  }
  const series = [...groups.values()].sort((a, b) => b.cost - a.cost);
  const sortedDays = runs.map(dayOf).sort();
  const days = daysBetween(sortedDays[0], sortedDays[sortedDays.length - 1]);
  const legend = h("div.legend", {}, series.map((s, k) => {
    const item = h("span", {}, s.name);
    item.style.setProperty("--swatch", PALETTE[k % PALETTE.length]);
    return item;
  }));
  body.append(
    h("div#usage-chart", {}, stackedBars({ days, series, format })),
    legend,
    h("table#usage-table", {},
      h("thead", {}, h("tr", {}, h("th", {}, groupBy), ["Runs", "Input tokens", "Output tokens", "Cost"].map((t) => h("th.num", {}, t)))),
      h("tbody", {}, series.map((s) => h("tr", {},
        h("td", {}, s.name), h("td.num", {}, s.runs), h("td.num", {}, s.input.toLocaleString()),
        h("td.num", {}, s.output.toLocaleString()), h("td.num", {}, money(s.cost)))))),
  );
}
