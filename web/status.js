// Status: live figures from /metrics, the health document (device, state, specialists) and
// the models the server knows.
import {call, el, showError, clearError, text, messageOf} from "./api.js";

const $ = (id) => document.getElementById(id);

function value(v) {
  if (v === null || v === undefined) return "";
  if (Array.isArray(v)) return v.join(", ") || "none";
  if (typeof v === "object") return Object.entries(v).map(([k, x]) => `${k}: ${typeof x === "object" ? JSON.stringify(x) : x}`).join("; ");
  return String(v);
}

/** Sum of a metric's samples over all label sets, from Prometheus text format. */
export function metricSum(page, name) {
  let total = 0;
  for (const line of page.split("\n")) {
    if (line.startsWith(name + "{") || line.startsWith(name + " ")) total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

let lastTokens = null;  // {tokens, at}: the previous sample, for tokens per second

async function refreshMetrics() {
  const box = $("status-metrics");
  let page;
  try {
    page = await text("/metrics");
  } catch (err) {
    box.replaceChildren(el("dt", {}, "Metrics"), el("dd", {}, messageOf(err)));
    return;
  }
  const tokens = metricSum(page, "llmserve_generation_tokens_total");
  const now = performance.now();
  const rate = lastTokens && now > lastTokens.at ? (tokens - lastTokens.tokens) / ((now - lastTokens.at) / 1000) : null;
  lastTokens = {tokens, at: now};
  const rows = [
    ["Requests running", metricSum(page, "llmserve_requests_running")],
    ["Requests waiting", metricSum(page, "llmserve_requests_waiting")],
    ["Tokens generated", tokens],
    ["Tokens per second", rate === null ? "…" : rate.toFixed(1)],
    ["KV slots used", `${metricSum(page, "llmserve_kv_slots_used")} of ${metricSum(page, "llmserve_kv_slots_total")}`],
  ];
  box.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {"data-metric": k}, String(v))]));
}

async function refresh() {
  clearError(null);
  await refreshMetrics();
  try {
    const health = await call("GET", "/health");
    $("status-health").replaceChildren(...Object.entries(health).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, value(v))]));
  } catch (err) {
    showError(null, err);
  }
  try {
    const data = await call("GET", "/v1/generation/models");
    $("status-models").replaceChildren(...(data.models || []).map((m) => el("tr", {},
      el("td", {}, m.name), el("td", {}, m.is_default ? "yes" : ""), el("td", {}, m.available ? "yes" : "no"),
      el("td", {}, m.description || ""))));
  } catch (err) {
    showError(null, err);
  }
}

export function start() {
  $("status-refresh").addEventListener("click", refresh);
  refresh();
  // Live figures while the section is on screen.
  setInterval(() => { if (!$("status").hidden) refreshMetrics(); }, 2000);
}

export const shown = refresh;
