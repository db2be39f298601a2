// Documents: upload files (the OpenAI-compatible /v1/files, purpose "assistants"), list
// them, and preview a file's text.

import { fileText, request, uploadFile } from "./api.js";
import { h, clear } from "./dom.js";
import { guarded } from "./status.js";

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export async function documentsView(main) {
  const files = (await request("GET", "/v1/files", { params: { limit: 100 } })).data;
  const preview = h("div#document-preview");
  const picker = h("input#document-file", { type: "file", "aria-label": "File to upload" });
  const purpose = h("select#document-purpose", { "aria-label": "Purpose" },
    ["assistants", "user_data"].map((p) => h("option", { value: p }, p)));
  const form = h("form.toolbar#upload-form", {
    onsubmit: (event) => {
      event.preventDefault();
      const file = picker.files[0];
      if (!file) return;
      guarded(async () => {
        await uploadFile(file, purpose.value);
        await documentsView(clear(main));
      });
    },
  }, picker, purpose, h("button.primary", { type: "submit" }, "Upload"));
  const show = (f) => guarded(async () => {
    const text = await fileText(f.id);
    clear(preview).append(h("h2", {}, f.filename), h("pre.preview", {}, text));
  });
  const search = h("input#document-search", { type: "search", placeholder: "Filter by name…", dataset: { focus: "" }, "aria-label": "Filter documents" });
  const rows = files.map((f) => h("tr.clickable", {
    tabindex: 0, dataset: { file: f.id, name: f.filename.toLowerCase() },
    onclick: () => show(f), onkeydown: (event) => { if (event.key === "Enter") show(f); },
  },
    h("td", {}, f.filename), h("td.mono", {}, f.id), h("td", {}, f.purpose),
    h("td.num", {}, size(f.bytes)),
    h("td", {}, new Date(f.created_at * 1000).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" }))));
  search.addEventListener("input", () => {
    const q = search.value.toLowerCase();
    for (const row of rows) row.hidden = !row.dataset.name.includes(q);
  });
  main.append(
    h("div.toolbar", {}, h("h1", {}, "Documents"), search),
    form,
    files.length
      ? h("table#documents", {},
        h("thead", {}, h("tr", {}, ["Name", "Id", "Purpose", "Size", "Uploaded"].map((t, i) => h(i === 3 ? "th.num" : "th", {}, t)))),
        h("tbody", {}, rows))
      : h("p.empty", {}, "No documents yet: upload one."),
    preview,
  );
}
