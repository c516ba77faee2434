// The one way the page talks to the server: JSON and server-sent events through Envoy,
// the API key (when the server asks for one) and readable error messages.

const KEY = "llmserve.apiKey";

/** An error from the server, already worded for a person. */
export class ApiError extends Error {
  constructor(message, {status = 0, code = 0} = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

const CODE_NAMES = {1: "Cancelled", 3: "Invalid input", 4: "Timed out", 5: "Not found", 6: "Already exists",
  7: "Not allowed", 8: "Limit reached", 9: "Not possible now", 12: "Not supported", 13: "Server error",
  14: "Server unavailable", 16: "API key needed"};

/** Words for a google.rpc.Status-like body {code, message, details}: its message, then the
 * fields it names (BadRequest) and the retry hint (RetryInfo), never the raw JSON. */
export function describeStatus(body, httpStatus = 0) {
  const code = body && typeof body.code === "number" ? body.code : 0;
  const title = CODE_NAMES[code] || (httpStatus ? `HTTP ${httpStatus}` : "Error");
  const lines = [`${title}: ${(body && body.message) || "the request failed"}`];
  for (const detail of (body && body.details) || []) {
    for (const v of detail.field_violations || detail.fieldViolations || []) {
      lines.push(`• ${v.field}: ${v.description}`);
    }
    const delay = detail.retry_delay || detail.retryDelay;
    if (delay) lines.push(`Try again in ${delay}.`);
    if (detail.request_id || detail.requestId) lines.push(`Request id: ${detail.request_id || detail.requestId}`);
  }
  return lines.join("\n");
}

async function errorFrom(resp) {
  const text = await resp.text();
  let body = null;
  try { body = JSON.parse(text); } catch (e) { /* Envoy's own replies can be plain text */ }
  if (!body || typeof body !== "object") body = {message: text.trim() || resp.statusText};
  return new ApiError(describeStatus(body, resp.status), {status: resp.status, code: body.code || 0});
}

export const apiKey = {
  get: () => sessionStorage.getItem(KEY) || "",
  set: (key) => key ? sessionStorage.setItem(KEY, key) : sessionStorage.removeItem(KEY),
};

// Set by main.js: shows the key dialog and resolves with the key typed, or "" if cancelled.
let askForKey = async () => "";
export function onKeyNeeded(fn) { askForKey = fn; }

function headers(extra = {}) {
  const h = {...extra};
  const key = apiKey.get();
  if (key) h["Authorization"] = `Bearer ${key}`;
  return h;
}

/** fetch with the key; on 401 asks for a key once and sends the request again. */
async function send(path, init) {
  for (let attempt = 0; ; attempt++) {
    let resp;
    try {
      resp = await fetch(path, {...init, headers: headers(init.headers)});
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError(`Cannot reach the server: ${e.message}`);
    }
    if (resp.status === 401 && attempt === 0 && await askForKey()) continue;
    if (!resp.ok) throw await errorFrom(resp);
    return resp;
  }
}

/** A JSON call: `body` is sent as JSON (or raw when it is a Blob/FormData). */
export async function call(method, path, body, {signal} = {}) {
  const init = {method, signal, headers: {Accept: "application/json"}};
  if (body instanceof Blob || body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const resp = await send(path, init);
  const text = await resp.text();
  return text ? JSON.parse(text) : {};
}

/** A plain-text GET (the Prometheus page at /metrics). */
export async function text(path, {signal} = {}) {
  return (await send(path, {method: "GET", signal, headers: {Accept: "text/plain"}})).text();
}

/** A server stream as SSE: calls onEvent(obj) for each `data:` event, in order. An `error`
 * event (a failure after the stream began) is thrown as an ApiError. */
export async function stream(method, path, body, onEvent, {signal} = {}) {
  const init = {method, signal, headers: {Accept: "text/event-stream"}};
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const resp = await send(path, init);
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, {stream: true});
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (!data) continue;
      const event = JSON.parse(data);
      if (event.error) throw new ApiError(describeStatus(event.error.status || {}), {code: (event.error.status || {}).code});
      onEvent(event);
    }
  }
}

/** The readable text of any error thrown by call/stream or the browser. */
export function messageOf(err) {
  if (err instanceof ApiError) return err.message;
  if (err && err.name === "AbortError") return "Stopped.";
  return `Unexpected error: ${err && err.message ? err.message : err}`;
}

/** Small DOM helper: el("td", {class: "x"}, "text", child). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
  return node;
}

/** Shows `text` (an error) in a section's status line and in the page's alert. */
export function showError(statusEl, err) {
  const text = messageOf(err);
  if (statusEl) {
    statusEl.textContent = text;
    statusEl.classList.add("error");
  }
  const notice = document.getElementById("notice");
  notice.textContent = text;
  notice.hidden = false;
}

export function clearError(statusEl, text = "") {
  if (statusEl) {
    statusEl.textContent = text;
    statusEl.classList.remove("error");
  }
  document.getElementById("notice").hidden = true;
}

/** seconds -> "1 min 5 s" */
export function duration(s) {
  if (!Number.isFinite(s) || s < 0) return "";
  s = Math.round(s);
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}
