// A stacked bar chart drawn as SVG: one bar per day, one colour per series.

import { svg } from "./dom.js";

export const PALETTE = ["#2457c5", "#e07b00", "#12805c", "#b42318", "#7a3ec8", "#0e7490", "#a15c07", "#667085"];

/**
 * days: ["2024-05-01", ...]; series: [{name, values: {day: number}}]; format: number -> label.
 */
export function stackedBars({ days, series, format, width = 860, height = 260 }) {
  const pad = { top: 12, right: 12, bottom: 28, left: 72 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const totals = days.map((d) => series.reduce((sum, s) => sum + (s.values[d] || 0), 0));
  const max = Math.max(...totals, 0) || 1;
  const root = svg("svg", {
    class: "chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": `Stacked bars over ${days.length} day(s)`,
  });
  for (let i = 0; i <= 4; i++) {
    const y = pad.top + innerH - (innerH * i) / 4;
    root.append(
      svg("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y, stroke: "#e4e7ec" }),
      svg("text", { x: pad.left - 6, y: y + 4, "text-anchor": "end" }, format((max * i) / 4)),
    );
  }
  const slot = innerW / Math.max(days.length, 1);
  const barW = Math.max(4, Math.min(48, slot * 0.7));
  days.forEach((day, i) => {
    const x = pad.left + slot * i + (slot - barW) / 2;
    let y = pad.top + innerH;
    series.forEach((s, k) => {
      const value = s.values[day] || 0;
      if (!value) return;
      const barH = (innerH * value) / max;
      y -= barH;
      const rect = svg("rect", {
        x, y, width: barW, height: Math.max(barH, 1), fill: PALETTE[k % PALETTE.length],
        "data-series": s.name, "data-day": day,
      }, svg("title", {}, `${s.name} ${day}: ${format(value)}`));
      root.append(rect);
    });
    const every = Math.ceil(days.length / 12);
    if (i % every === 0) {
      root.append(svg("text", { x: x + barW / 2, y: height - 8, "text-anchor": "middle" }, day.slice(5)));
    }
  });
  return root;
}
