// Specialists: the list with Delete buttons, an add form (name + corpus file, uploaded raw),
// and the retraining job that adding or deleting starts, watched live with progress and ETA.
import {call, stream, el, showError, clearError, duration} from "./api.js";

const $ = (id) => document.getElementById(id);
const STATE = (s) => (s || "").replace(/^SPECIALIST_STATE_|^JOB_STATE_/, "").toLowerCase();

async function load() {
  try {
    const data = await call("GET", "/v1/specialists");
    const rows = (data.specialists || []).map((s) => el("tr", {"data-name": s.name},
      el("td", {}, s.name), el("td", {}, STATE(s.state)),
      el("td", {}, `${s.corpus_file_count} file(s), ${s.corpus_size_bytes} bytes`),
      el("td", {}, el("button", {type: "button", class: "danger", "aria-label": `Delete ${s.name}`,
        onclick: () => remove(s.name)}, "Delete"))));
    $("spec-list").replaceChildren(...rows);
    if (!rows.length) $("spec-list").append(el("tr", {}, el("td", {colspan: 4, class: "muted"}, "No specialists yet.")));
    // A job already running (started elsewhere or before a reload) is shown too.
    const jobs = await call("GET", "/v1/specialists/trainingJobs?page_size=5");
    const live = (jobs.jobs || []).find((j) => ["JOB_STATE_QUEUED", "JOB_STATE_RUNNING"].includes(j.state));
    if (live && !watching) watch(live.job_id);
  } catch (err) {
    showError($("spec-status"), err);
  }
}

async function remove(name) {
  clearError($("spec-status"), `Deleting ${name}…`);
  try {
    const data = await call("DELETE", `/v1/specialists/${encodeURIComponent(name)}`);
    clearError($("spec-status"), data.message || `Deleted ${name}.`);
    await load();
    if (data.training_job_id) watch(data.training_job_id);
  } catch (err) {
    showError($("spec-status"), err);
  }
}

async function add(ev) {
  ev.preventDefault();
  const name = $("spec-name").value.trim();
  const file = $("spec-corpus").files[0];
  if (!file) return;
  const button = $("spec-add");
  button.disabled = true;
  try {
    clearError($("spec-status"), `Uploading ${file.name}…`);
    // The transcoder hands the raw body to the stream's HttpBody chunk: one request, one chunk.
    const fileName = file.name.endsWith(".txt") ? file.name : `${file.name}.txt`;
    await call("POST", `/v1/specialists/${encodeURIComponent(name)}/corpus/${encodeURIComponent(fileName)}`,
      new Blob([await file.arrayBuffer()], {type: "text/plain"}));
    clearError($("spec-status"), `Adding ${name}…`);
    const data = await call("POST", "/v1/specialists", {name});
    clearError($("spec-status"), data.message || `Added ${name}.`);
    $("spec-form").reset();
    await load();
    if (data.training_job_id) watch(data.training_job_id);
  } catch (err) {
    showError($("spec-status"), err);
  } finally {
    button.disabled = false;
  }
}

let watching = null;

async function watch(jobId) {
  watching = jobId;
  const box = $("spec-job");
  box.hidden = false;
  box.dataset.state = "running";
  const bar = $("spec-progress");
  const text = $("spec-job-text");
  const began = performance.now();
  let first = null;
  const render = (p) => {
    const done = Math.max(0, Math.min(1, p.progress || 0));
    bar.value = done;
    bar.setAttribute("aria-valuetext", `${Math.round(done * 100)} %`);
    // ETA from the rate seen since this page began watching.
    if (first === null && done > 0) first = {done, at: performance.now()};
    let eta = "";
    if (first && done > first.done) {
      const rate = (done - first.done) / ((performance.now() - first.at) / 1000);
      eta = ` · about ${duration((1 - done) / rate)} left`;
    }
    const steps = p.total_steps ? ` · step ${p.step}/${p.total_steps}` : "";
    text.textContent = `Job ${jobId}: ${STATE(p.state)} ${Math.round(done * 100)} %${steps}${eta}${p.message ? ` · ${p.message}` : ""}`;
  };
  try {
    await stream("GET", `/v1/specialists/trainingJobs/${encodeURIComponent(jobId)}:watch`, undefined, (event) => {
      if (event.progress) render(event.progress);
      if (event.final) {
        render(event.final);
        box.dataset.state = STATE(event.final.state);
        text.textContent += ` · finished in ${duration((performance.now() - began) / 1000)}`;
      }
    });
  } catch (err) {
    box.dataset.state = "failed";
    showError(text, err);
  } finally {
    if (watching === jobId) watching = null;
  }
  load();
}

export function start() {
  $("spec-form").addEventListener("submit", add);
  load();
}

export const shown = load;
