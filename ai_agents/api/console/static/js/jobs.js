// Background jobs (runs started with background: true), found through the runs of the
// tenant's threads: queued, running, failed (after their last attempt) and the rest;
// queued and running ones can be cancelled. Look one up by id too.

import { all, v1 } from "./api.js";
import { append, h, clear, shortId, when } from "./dom.js";
import { guarded } from "./status.js";
import { runsOf } from "./usage.js";

const MAX_JOBS = 100;
const SECTIONS = [
  ["queued", "Queued"],
  ["running", "Running"],
  ["failed", "Failed (dead letters)"],
  ["succeeded", "Succeeded"],
  ["cancelled", "Cancelled"],
];

function jobTable(jobs, reload) {
  return h("table.jobs", {},
    h("thead", {}, h("tr", {}, ["Job", "Thread", "Attempts", "Created", "Error", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, jobs.map((j) => h("tr", { dataset: { job: j.id } },
      h("td.mono", {}, shortId(j.id)),
      h("td", {}, h("a", { href: `#/threads/${j.thread_id}` }, shortId(j.thread_id))),
      h("td.num", {}, `${j.attempts}/${j.max_attempts}`),
      h("td", {}, when(j.created_at)),
      h("td", {}, j.error ? `${j.error.code}: ${j.error.message}` : ""),
      h("td", {}, ["queued", "running"].includes(j.status) && !j.cancel_requested
        ? h("button.danger", { type: "button", onclick: () => guarded(async () => { await v1.post(`/jobs/${j.id}/cancel`, {}); reload(); }) }, "Cancel")
        : j.cancel_requested ? "cancelling" : "")))));
}

export async function jobsView(main) {
  const threads = await all("/threads", {}, 500);
  const runs = (await runsOf(threads)).filter((r) => r.job_id);
  runs.sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
  const jobs = await Promise.all(runs.slice(0, MAX_JOBS).map((r) => v1.get(`/jobs/${r.job_id}`)));
  const reload = () => jobsView(clear(main));
  const lookup = h("input#job-id", { placeholder: "job id", dataset: { focus: "" }, "aria-label": "Job id" });
  const found = h("div");
  append(main, [
    h("div.toolbar", {},
      h("h1", {}, "Jobs"),
      h("form", {
        onsubmit: (event) => {
          event.preventDefault();
          guarded(async () => {
            const job = await v1.get(`/jobs/${lookup.value.trim()}`);
            clear(found).append(h("h2", {}, `Job ${job.id}: ${job.status}`), jobTable([job], reload));
          });
        },
      }, lookup, " ", h("button", { type: "submit" }, "Look up")),
      h("button", { type: "button", onclick: reload }, "Refresh")),
    found,
    jobs.length ? null : h("p.empty", {}, "No background jobs yet (runs started with background: true)."),
    SECTIONS.map(([status, title]) => {
      const some = jobs.filter((j) => j.status === status);
      return some.length ? [h("h2", {}, `${title} (${some.length})`), jobTable(some, reload)] : null;
    }),
  ]);
}
