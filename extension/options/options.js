// The options page: backend URL and API key, auto-label sites, request budget. Host access to a backend or a
// site that the manifest does not grant is requested (optional_host_permissions) when the settings are saved.

import { BackendClient } from "../lib/backend.js";
import { BUILT_IN_BACKEND_HOSTS, DEFAULTS, hostPattern, loadSettings, normalizeBackendUrl, parseSites, sitePattern } from "../lib/settings.js";

const $ = (id) => document.getElementById(id);

function say(element, text, kind = "") {
  element.textContent = text;
  element.className = kind;
}

async function fill() {
  const settings = await loadSettings(chrome.storage.local);
  $("backendUrl").value = settings.backendUrl;
  $("apiKey").value = settings.apiKey;
  $("autoLabelSites").value = settings.autoLabelSites.join("\n");
  $("requestsPerMinute").value = String(settings.requestsPerMinute);
}

/** The host permissions the form's values need that the manifest does not grant. */
function neededOrigins(backendUrl, sites) {
  const origins = [];
  const backend = new URL(backendUrl);
  if (!(backend.protocol === "http:" && BUILT_IN_BACKEND_HOSTS.includes(backend.hostname))) origins.push(hostPattern(backendUrl));
  for (const site of sites) origins.push(sitePattern(site));
  return [...new Set(origins)];
}

async function save(event) {
  event.preventDefault();
  const status = $("status");
  const backendUrl = normalizeBackendUrl($("backendUrl").value || DEFAULTS.backendUrl);
  if (!backendUrl) {
    say(status, "The backend URL must be an http(s) address, e.g. http://127.0.0.1:8000.", "error");
    return;
  }
  const sites = parseSites($("autoLabelSites").value);
  const rate = Math.floor(Number($("requestsPerMinute").value));
  if (!Number.isFinite(rate) || rate < 1 || rate > 120) {
    say(status, "The request budget must be between 1 and 120 checks per minute.", "error");
    return;
  }
  // First thing in the click handler: a permission request needs the user's gesture.
  const origins = neededOrigins(backendUrl, sites);
  let granted = true;
  if (origins.length) granted = await chrome.permissions.request({ origins }).catch(() => false);
  await chrome.storage.local.set({ backendUrl, apiKey: $("apiKey").value.trim(), autoLabelSites: sites, requestsPerMinute: rate });
  await chrome.runtime.sendMessage({ type: "deepfake:sync-auto-label" }).catch(() => null);
  await fill();
  if (granted) say(status, "Saved.", "ok");
  else say(status, `Saved, but access was not granted to: ${origins.join(", ")}. Checks there will fail until it is.`, "error");
}

async function test() {
  const out = $("testResult");
  const backendUrl = normalizeBackendUrl($("backendUrl").value);
  if (!backendUrl) {
    say(out, "Not a valid http(s) address.", "error");
    return;
  }
  say(out, "Testing…");
  const health = await new BackendClient({ baseUrl: backendUrl, apiKey: $("apiKey").value.trim() }).health();
  if (health.ready) say(out, `Ready${health.model?.id ? `: model ${health.model.id}` : ""}.`, "ok");
  else if (health.ok) say(out, `Reachable, not ready: ${health.message}`, "error");
  else say(out, `Unreachable: ${health.message}. Save first if the browser has to allow this address.`, "error");
}

$("form").addEventListener("submit", (event) => {
  save(event).catch((error) => say($("status"), `Not saved: ${error.message}`, "error"));
});
$("test").addEventListener("click", () => {
  test().catch((error) => say($("testResult"), error.message, "error"));
});
$("showKey").addEventListener("click", () => {
  const input = $("apiKey");
  input.type = input.type === "password" ? "text" : "password";
  $("showKey").textContent = input.type === "password" ? "Show" : "Hide";
});
fill().catch((error) => say($("status"), error.message, "error"));
