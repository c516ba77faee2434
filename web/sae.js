// SAE jobs: upload a corpus, start a job with its hyper-parameters, watch it live (progress
// bar, loss curve on a canvas), then show its metrics with a download of the result document.
import {call, stream, el, showError, clearError, duration} from "./api.js";

const $ = (id) => document.getElementById(id);
const STATE = (s) => (s || "").replace(/^JOB_STATE_/, "").toLowerCase();
const num = (id) => ($(id).value.trim() === "" ? undefined : Number($(id).value));

/** Line charts on one canvas, no library: `series` is [{label, points: [[x, y], ...]}]; the
 * first series is scaled on the left axis, the second (if any) on the right one. */
export function drawChart(canvas, series) {
  const ctx = canvas.getContext("2d");
  const {width: w, height: h} = canvas;
  const pad = {l: 52, r: 52, t: 22, b: 26};
  const style = getComputedStyle(document.body);
  const colors = [getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#2f6fdb", "#d9822b"];
  ctx.clearRect(0, 0, w, h);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = style.color;
  ctx.strokeStyle = style.color;
  ctx.globalAlpha = 0.4;
  ctx.strokeRect(pad.l, pad.t, w - pad.l - pad.r, h - pad.t - pad.b);
  ctx.globalAlpha = 1;
  const all = series.flatMap((s) => s.points);
  if (!all.length) {
    ctx.fillText("waiting for the first step…", pad.l + 8, pad.t + 18);
    return;
  }
  const xs = all.map((p) => p[0]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const px = (x) => pad.l + ((x - x0) / (x1 - x0)) * (w - pad.l - pad.r);
  ctx.fillText(`${x1} tokens`, w - pad.r - 90, h - 8);
  series.forEach(({label, points}, i) => {
    if (!points.length) return;
    const ys = points.map((p) => p[1]);
    const y0 = Math.min(0, ...ys), y1 = Math.max(...ys, y0 + 1e-9);
    const py = (y) => h - pad.b - ((y - y0) / (y1 - y0)) * (h - pad.t - pad.b);
    ctx.fillStyle = ctx.strokeStyle = colors[i % colors.length];
    const axisX = i === 0 ? 4 : w - pad.r + 4;
    ctx.fillText(y1.toPrecision(3), axisX, pad.t + 10);
    ctx.fillText(y0.toPrecision(3), axisX, h - pad.b);
    ctx.fillText(label, pad.l + 8 + i * 140, pad.t - 6);
    ctx.lineWidth = 2;
    ctx.beginPath();
    points.forEach(([x, y], j) => (j ? ctx.lineTo(px(x), py(y)) : ctx.moveTo(px(x), py(y))));
    ctx.stroke();
    for (const [x, y] of points) ctx.fillRect(px(x) - 2, py(y) - 2, 4, 4);
  });
}

async function loadModels() {
  try {
    const data = await call("GET", "/v1/generation/models");
    const select = $("sae-model");
    select.replaceChildren(...(data.models || []).filter((m) => m.available).map((m) =>
      el("option", {value: m.name, selected: m.is_default}, m.name)));
  } catch (err) {
    showError($("sae-status"), err);
  }
}

async function loadJobs() {
  try {
    const data = await call("GET", "/v1/sae/jobs?page_size=20");
    const jobs = data.jobs || [];
    $("sae-jobs").replaceChildren(...jobs.map((j) => el("tr", {},
      el("td", {}, el("code", {}, j.job_id || "")), el("td", {}, j.model_name || ""),
      el("td", {}, j.status || STATE(j.state)),
      el("td", {}, `${Math.round((j.status === "completed" ? 1 : j.progress || 0) * 100)} %`))));
    if (!jobs.length) $("sae-jobs").append(el("tr", {}, el("td", {colspan: 4, class: "muted"}, "No jobs yet.")));
  } catch (err) {
    showError($("sae-status"), err);
  }
}

async function startJob(ev) {
  ev.preventDefault();
  const file = $("sae-corpus").files[0];
  if (!file) return;
  const button = $("sae-start");
  button.disabled = true;
  try {
    clearError($("sae-status"), `Uploading ${file.name}…`);
    const form = new FormData();
    form.append("file", file, file.name);
    const upload = await call("POST", "/v1/sae/corpora:upload", form);
    clearError($("sae-status"), "Starting…");
    const job = await call("POST", "/v1/sae/jobs", {
      model_name: $("sae-model").value, corpus_file: upload.filename, layer_number: num("sae-layer"),
      hidden_dim: num("sae-width"), k: num("sae-k"), learning_rate: num("sae-lr"), batch_size: num("sae-batch"),
      max_epochs: num("sae-epochs"), max_sequence_length: num("sae-seq"),
    });
    clearError($("sae-status"), `Job ${job.job_id} ${job.status}.`);
    loadJobs();
    await watch(job.job_id);
  } catch (err) {
    showError($("sae-status"), err);
  } finally {
    button.disabled = false;
  }
}

async function watch(jobId) {
  const box = $("sae-job");
  box.hidden = false;
  box.dataset.state = "running";
  $("sae-result").hidden = true;
  const bar = $("sae-progress"), text = $("sae-job-text"), canvas = $("sae-chart");
  const points = [];
  const render = (p) => {
    bar.value = Math.max(0, Math.min(1, p.progress || 0));
    bar.setAttribute("aria-valuetext", `${Math.round(bar.value * 100)} %`);
    const eta = p.estimated_time_remaining != null ? ` · about ${duration(p.estimated_time_remaining)} left` : "";
    text.textContent = `${p.status || STATE(p.state)} · ${Math.round(bar.value * 100)} % · epoch ${p.epoch} · ` +
      `loss ${Number(p.loss || 0).toFixed(4)} · ${p.tokens_processed} tokens${eta}${p.message ? ` · ${p.message}` : ""}`;
    if (p.loss > 0 && !points.some(([x]) => x === Number(p.tokens_processed))) {
      points.push([Number(p.tokens_processed), p.loss]);
      drawChart(canvas, [{label: "training loss", points}]);
      canvas.dataset.points = String(points.length);
    }
  };
  drawChart(canvas, [{label: "training loss", points}]);
  let final = null;
  // Half-second snapshots: enough points for a curve without flooding a slow link.
  await stream("GET", `/v1/sae/jobs/${encodeURIComponent(jobId)}:watch?min_interval_seconds=0.5`, undefined, (event) => {
    if (event.progress) render(event.progress);
    if (event.final) { final = event.final; render(final); }
  });
  box.dataset.state = final ? STATE(final.state) || final.status : "unknown";
  loadJobs();
  if (final && final.status === "completed") await showResult(jobId);
}

async function showResult(jobId) {
  const result = await call("GET", `/v1/sae/jobs/${encodeURIComponent(jobId)}/result`);
  const m = result.metrics || {}, stats = result.training_stats || {};
  // The whole run's curve (sampled by the server), loss and L0, replaces the live points.
  const curve = m.loss_curve || [];
  if (curve.length) {
    const canvas = $("sae-chart");
    drawChart(canvas, [{label: "training loss", points: curve.map((p) => [Number(p.tokens_processed), p.loss])},
      {label: "L0 (latents per token)", points: curve.map((p) => [Number(p.tokens_processed), p.l0])}]);
    canvas.dataset.points = String(curve.length);
    canvas.setAttribute("aria-label", "Training loss and L0 by tokens processed");
  }
  const rows = {"final loss": stats.final_loss, "epochs": stats.total_epochs, "FVU": m.fvu, "L0": m.l0,
    "dead fraction": m.dead_fraction, "features": result.feature_count, "tokens/s": stats.tokens_per_second,
    "weights": (result.artifacts || {}).weights_path};
  $("sae-metrics").replaceChildren(...Object.entries(rows).filter(([, v]) => v !== undefined && v !== "")
    .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, typeof v === "number" ? Number(v.toPrecision(4)) : v)]));
  const link = $("sae-download");
  if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([JSON.stringify(result, null, 2)], {type: "application/json"}));
  link.download = `sae-${jobId}.json`;
  $("sae-result").hidden = false;
}

export function start() {
  $("sae-form").addEventListener("submit", startJob);
  loadModels();
  loadJobs();
}

export const shown = loadJobs;
