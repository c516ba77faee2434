// Status: the health document (device, state, specialists) and the models the server knows.
import {call, el, showError, clearError} from "./api.js";

const $ = (id) => document.getElementById(id);

function value(v) {
  if (v === null || v === undefined) return "";
  if (Array.isArray(v)) return v.join(", ") || "none";
  if (typeof v === "object") return Object.entries(v).map(([k, x]) => `${k}: ${typeof x === "object" ? JSON.stringify(x) : x}`).join("; ");
  return String(v);
}

async function refresh() {
  clearError(null);
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
}

export const shown = refresh;
