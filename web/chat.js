// Chat on ChatService sessions: the user's conversations, the current one's history, replies
// streamed token by token (with Stop; StreamConversation for a conversation's first message,
// StreamMessage after), and an optional JSON-schema mode. The user id and the
// current session live in localStorage, so a reload comes back to the same conversation.
import {call, stream, el, showError, clearError, messageOf} from "./api.js";

const USER = "llmserve.chat.user";
const SESSION = "llmserve.chat.session";
const $ = (id) => document.getElementById(id);
let controller = null;

function userId() {
  let id = localStorage.getItem(USER);
  if (!id) {
    id = crypto.randomUUID();
    localStorage.setItem(USER, id);
  }
  return id;
}

const current = () => localStorage.getItem(SESSION) || "";
function setCurrent(id) {
  if (id) localStorage.setItem(SESSION, id); else localStorage.removeItem(SESSION);
  $("chat-end").hidden = !id;
}

function bubble(sender, text, json) {
  const item = el("li", {class: sender === "user" ? "user" : "llm"},
    el("span", {class: "who"}, sender === "user" ? "You" : "Model"), el("span", {class: "text"}, text));
  if (json) item.append(jsonBlock(json));
  $("chat-log").append(item);
  item.scrollIntoView({block: "nearest"});
  return item;
}

function jsonBlock(json) {
  return el("pre", {class: "json", "aria-label": "Validated JSON document"}, JSON.stringify(json, null, 2));
}

async function loadSessions() {
  const list = $("chat-sessions");
  try {
    const data = await call("GET", `/v1/chat/sessions?user_id=${encodeURIComponent(userId())}`);
    list.replaceChildren();
    for (const s of data.sessions || []) {
      const when = s.last_active ? new Date(s.last_active).toLocaleString() : "";
      list.append(el("li", {}, el("button", {type: "button", "aria-current": s.session_id === current() ? "true" : "false",
        "aria-label": `Conversation of ${when}, ${s.message_count} messages`, "data-session": s.session_id,
        onclick: () => open(s.session_id)}, when, el("br"), el("span", {class: "muted"}, `${s.message_count} messages`))));
    }
    if (!list.children.length) list.append(el("li", {class: "muted"}, "No conversations yet."));
  } catch (err) {
    showError($("chat-status"), err);
  }
}

async function open(id) {
  setCurrent(id);
  $("chat-log").replaceChildren();
  clearError($("chat-status"));
  if (id) {
    try {
      const data = await call("GET", `/v1/chat/sessions/${encodeURIComponent(id)}/messages`);
      for (const m of data.messages || []) bubble(m.sender, m.content, m.response_json);
    } catch (err) {
      if (err.code === 5) setCurrent("");  // ended or unknown: start afresh
      else showError($("chat-status"), err);
    }
  }
  for (const b of document.querySelectorAll("#chat-sessions button")) {
    b.setAttribute("aria-current", b.dataset.session === current() ? "true" : "false");
  }
}

async function endConversation() {
  const id = current();
  if (!id) return;
  try {
    await call("DELETE", `/v1/chat/sessions/${encodeURIComponent(id)}`);
    await open("");
    clearError($("chat-status"), "Conversation ended.");
  } catch (err) {
    showError($("chat-status"), err);
  }
  loadSessions();
}

function schemaFields() {
  if (!$("chat-schema-on").checked) return {};
  const text = $("chat-schema").value.trim();
  try { JSON.parse(text); } catch (e) { throw new Error(`The JSON schema is not valid JSON: ${e.message}`); }
  return {json_schema: text};
}

function busy(on) {
  $("chat-send").disabled = on;
  $("chat-stop").disabled = !on;
}

async function send(ev) {
  ev.preventDefault();
  const text = $("chat-message").value.trim();
  if (!text) return;
  let extra;
  try { extra = schemaFields(); } catch (e) { showError($("chat-status"), e); return; }
  clearError($("chat-status"), "Thinking…");
  $("chat-message").value = "";
  bubble("user", text);
  const reply = bubble("llm", "");
  reply.dataset.state = "waiting";
  busy(true);
  controller = new AbortController();
  try {
    let deltas = 0;
    const onEvent = (event) => {
      if (event.session_id) {
        // StreamConversation's first event: the session exists from here on.
        setCurrent(event.session_id);
        loadSessions();
      } else if (event.delta) {
        deltas += 1;
        reply.dataset.deltas = String(deltas);
        reply.dataset.state = "streaming";
        reply.querySelector(".text").textContent += event.delta.text || "";
      } else if (event.reply && event.reply.response_json) {
        reply.append(jsonBlock(event.reply.response_json));
      } else if (event.final) {
        reply.querySelector(".text").textContent = event.final.text;
      }
    };
    if (!current()) {
      await stream("POST", "/v1/chat/sessions:stream", {user_id: userId(), initial_message: text, ...extra}, onEvent,
        {signal: controller.signal});
      loadSessions();  // its message count
    } else {
      await stream("POST", `/v1/chat/sessions/${encodeURIComponent(current())}:streamMessage`,
        {user_message: text, ...extra}, onEvent, {signal: controller.signal});
    }
    reply.dataset.state = "done";
    clearError($("chat-status"), "");
  } catch (err) {
    reply.dataset.state = err.name === "AbortError" ? "stopped" : "failed";
    if (err.name === "AbortError") {
      clearError($("chat-status"), "Stopped.");
    } else {
      reply.append(el("span", {class: "error"}, messageOf(err)));
      showError($("chat-status"), err);
    }
  } finally {
    busy(false);
    controller = null;
  }
}

export function start() {
  $("chat-form").addEventListener("submit", send);
  $("chat-message").addEventListener("keydown", (ev) => {
    // Enter sends, Shift+Enter makes a new line (as most chat boxes do).
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("chat-form").requestSubmit(); }
  });
  $("chat-stop").addEventListener("click", () => controller && controller.abort());
  $("chat-new").addEventListener("click", () => { open(""); loadSessions(); $("chat-message").focus(); });
  $("chat-end").addEventListener("click", endConversation);
  open(current()).then(loadSessions);
}

export function shown() { loadSessions(); }
