// The status bar under the header: errors (and notices) of the current page.

import { h, clear } from "./dom.js";

const bar = () => document.getElementById("status");

export function report(error) {
  const text = error && error.message ? error.message : String(error);
  clear(bar()).append(h("span.error", {}, text));
}

export function clearReport() {
  clear(bar());
}

/** Run *action* (async); show its error, if any, instead of leaving it unhandled. */
export async function guarded(action) {
  try {
    return await action();
  } catch (error) {
    report(error);
    return undefined;
  }
}
