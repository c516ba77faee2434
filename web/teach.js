// Teach: add a fact to a LUT, then answer one prompt with the LUT and without it (the base
// model), side by side; list the LUT's entries and delete one. The threshold is a slider.
import {call, el, showError, clearError} from "./api.js";

const $ = (id) => document.getElementById(id);
const lutName = () => $("teach-lut").value.trim();

async function loadEntries() {
  const body = $("teach-entries");
  const name = lutName();
  if (!name) { body.replaceChildren(); return; }
  try {
    const data = await call("GET", `/v1/luts/${encodeURIComponent(name)}/entries`);
    body.replaceChildren(...(data.entries || []).map((e) => el("tr", {"data-entry": e.entry_id},
      el("td", {}, e.label), el("td", {}, el("code", {}, e.label_context || "")),
      el("td", {}, el("button", {type: "button", class: "danger", "aria-label": `Delete ${e.label}`,
        onclick: () => remove(e)}, "Delete")))));
    if (!body.children.length) body.append(el("tr", {}, el("td", {colspan: 3, class: "muted"}, "No entries yet.")));
  } catch (err) {
    // A LUT nobody taught yet is simply empty.
    if (err.code === 5) body.replaceChildren(el("tr", {}, el("td", {colspan: 3, class: "muted"}, "No entries yet.")));
    else showError($("teach-status"), err);
  }
}

async function remove(entry) {
  try {
    await call("DELETE", `/v1/luts/${encodeURIComponent(lutName())}/entries/${encodeURIComponent(entry.entry_id)}`);
    clearError($("teach-status"), `Deleted “${entry.label}”.`);
  } catch (err) {
    showError($("teach-status"), err);
  }
  loadEntries();
}

async function teach(ev) {
  ev.preventDefault();
  const button = $("teach-submit");
  button.disabled = true;
  clearError($("teach-status"), "Teaching…");
  try {
    const data = await call("POST", `/v1/luts/${encodeURIComponent(lutName())}:train`,
      {label: $("teach-fact").value, label_context: $("teach-context").value});
    clearError($("teach-status"), `Taught: ${data.entry_count} entries in “${data.lut_name}” (version ${data.version}).`);
    $("teach-fact").value = "";
  } catch (err) {
    showError($("teach-status"), err);
  } finally {
    button.disabled = false;
  }
  loadEntries();
}

async function ask(ev) {
  ev.preventDefault();
  const button = $("ask-submit");
  button.disabled = true;
  const base = {prompt: $("ask-prompt").value, length: Number($("ask-length").value) || undefined, temperature: 0};
  $("ask-lut").textContent = "…";
  $("ask-base").textContent = "…";
  $("ask-lut").dataset.state = $("ask-base").dataset.state = "waiting";
  clearError($("ask-status"), "Generating…");
  const one = async (target, body) => {
    try {
      const data = await call("POST", "/v1/luts:generate", body);
      $(target).textContent = data.completion;
      $(target).dataset.state = "done";
    } catch (err) {
      $(target).textContent = "";
      $(target).dataset.state = "failed";
      throw err;
    }
  };
  try {
    await Promise.all([
      one("ask-lut", {...base, lut_name: lutName(), threshold: Number($("ask-threshold").value)}),
      one("ask-base", base),
    ]);
    clearError($("ask-status"), "");
  } catch (err) {
    showError($("ask-status"), err);
  } finally {
    button.disabled = false;
  }
}

export function start() {
  $("teach-form").addEventListener("submit", teach);
  $("ask-form").addEventListener("submit", ask);
  const slider = $("ask-threshold");
  const show = () => { $("ask-threshold-value").value = Number(slider.value).toFixed(2); };
  slider.addEventListener("input", show);
  show();
  $("teach-lut").addEventListener("change", loadEntries);
  loadEntries();
}

export function shown() { loadEntries(); }
