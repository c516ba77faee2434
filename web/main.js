// Page start-up: section navigation (#chat, #teach, ...), the API key dialog, and each
// section's first load when it is first shown.
import {apiKey, onKeyNeeded} from "./api.js";
import * as chat from "./chat.js";
import * as teach from "./teach.js";
import * as specialists from "./specialists.js";
import * as sae from "./sae.js";
import * as status from "./status.js";

const SECTIONS = {chat, teach, specialists, sae, status};
const started = new Set();

function show(name) {
  if (!SECTIONS[name]) name = "chat";
  for (const section of document.querySelectorAll("[data-section]")) section.hidden = section.id !== name;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === `#${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!started.has(name)) {
    started.add(name);
    SECTIONS[name].start();
  } else if (SECTIONS[name].shown) {
    SECTIONS[name].shown();
  }
}

function setUpKeyDialog() {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  const button = document.getElementById("key-button");
  let pending = null;
  const finish = (key) => {
    if (key) apiKey.set(key);
    button.hidden = !apiKey.get();
    if (pending) pending(key);
    pending = null;
  };
  onKeyNeeded(() => new Promise((resolve) => {
    if (pending) { resolve(""); return; }  // one dialog at a time; the others report the 401
    pending = resolve;
    input.value = "";
    dialog.showModal();
  }));
  document.getElementById("key-form").addEventListener("submit", () => finish(input.value.trim()));
  document.getElementById("key-cancel").addEventListener("click", () => { dialog.close(); finish(""); });
  dialog.addEventListener("cancel", () => finish(""));
  button.hidden = !apiKey.get();
  button.addEventListener("click", () => { input.value = ""; dialog.showModal(); });
}

setUpKeyDialog();
window.addEventListener("hashchange", () => show(location.hash.slice(1)));
show(location.hash.slice(1));
document.body.dataset.ready = "true";
