// The console's shell: sign-in, hash routing (#/agents, #/threads/<id>, ...), keyboard.

import { session, v1 } from "./api.js";
import { h, clear } from "./dom.js";
import { agentsView } from "./agents.js";
import { threadsView } from "./threads.js";
import { chatView } from "./chat.js";
import { usageView } from "./usage.js";
import { documentsView } from "./documents.js";
import { jobsView } from "./jobs.js";
import { report, clearReport } from "./status.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const signOut = document.getElementById("sign-out");
const help = document.getElementById("help");

function signInView(main) {
  const input = h("input#api-key", {
    type: "password", autocomplete: "off", placeholder: "aak_…", required: true,
    "aria-label": "API key",
  });
  const problem = h("p.error");
  const form = h("form.signin", {
    onsubmit: async (event) => {
      event.preventDefault();
      session.key = input.value.trim();
      try {
        await v1.get("/agents", { limit: 1 });
      } catch (error) {
        session.key = null;
        problem.textContent = error.status === 401 ? "That key was refused." : error.message;
        return;
      }
      if (location.hash === "#/agents") route();
      else location.hash = "#/agents"; // hashchange routes
    },
  },
    h("h1", {}, "Sign in"),
    h("label", { for: "api-key" }, "API key"),
    input,
    problem,
    h("button.primary", { type: "submit" }, "Sign in"),
    h("p.muted", {}, "The key stays in this tab (sessionStorage) and is sent only to this server."),
  );
  main.append(form);
  input.focus();
}

const ROUTES = [
  [/^#\/agents$/, agentsView],
  [/^#\/threads$/, threadsView],
  [/^#\/threads\/([0-9a-f-]{36})$/, chatView],
  [/^#\/usage$/, usageView],
  [/^#\/documents$/, documentsView],
  [/^#\/jobs$/, jobsView],
];

// Each route renders into its own container: a view still loading when the user moves on
// finishes into a detached one, never into the page.
async function route() {
  const view = h("div.view");
  main.replaceChildren(view);
  clearReport();
  const signedIn = Boolean(session.key);
  nav.hidden = !signedIn;
  signOut.hidden = !signedIn;
  if (!signedIn) return signInView(view);
  const hash = location.hash || "#/agents";
  for (const link of nav.querySelectorAll("a")) {
    link.classList.toggle("current", hash.startsWith(link.getAttribute("href")));
  }
  for (const [pattern, render] of ROUTES) {
    const match = pattern.exec(hash);
    if (match) {
      try {
        await render(view, ...match.slice(1));
      } catch (error) {
        report(error);
      }
      return;
    }
  }
  location.hash = "#/agents";
}

signOut.addEventListener("click", () => {
  session.key = null;
  location.hash = "";
  route();
});
window.addEventListener("console:unauthorized", () => {
  session.key = null;
  route();
});
window.addEventListener("hashchange", route);
document.getElementById("help-close").addEventListener("click", () => help.close());

// Keyboard: "g" then a letter goes to a section; "/" focuses the page's search or message
// box; "n" starts a new item; "?" shows the help. Not while typing in a field.
let pendingG = false;
document.addEventListener("keydown", (event) => {
  const target = event.target;
  const typing = target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  if (typing && event.key === "Escape") { target.blur(); return; }  // back to the shortcuts
  if (typing || event.ctrlKey || event.metaKey || event.altKey || !session.key) return;
  if (pendingG) {
    pendingG = false;
    const link = nav.querySelector(`a[data-key="${event.key}"]`);
    if (link) { location.hash = link.getAttribute("href"); event.preventDefault(); }
    return;
  }
  if (event.key === "g") { pendingG = true; return; }
  if (event.key === "?") { help.showModal(); event.preventDefault(); return; }
  if (event.key === "/") {
    const field = main.querySelector("[data-focus]");
    if (field) { field.focus(); event.preventDefault(); }
    return;
  }
  if (event.key === "n") {
    const button = main.querySelector("[data-new]");
    if (button) { button.click(); event.preventDefault(); }
  }
});

route();
