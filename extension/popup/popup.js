// The popup: backend status, the auto-label switch for the current site, the last checks.

import { BackendClient } from "../lib/backend.js";
import { CheckHistory } from "../lib/checks.js";
import { BUILT_IN_BACKEND_HOSTS, loadSettings, sitePattern, siteOrigin } from "../lib/settings.js";

const $ = (id) => document.getElementById(id);

function ago(time) {
  const s = Math.max(0, Math.round((Date.now() - time) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(time).toLocaleDateString();
}

async function showBackend(settings) {
  const health = await new BackendClient({ baseUrl: settings.backendUrl, apiKey: settings.apiKey }).health();
  const dot = $("backend-dot");
  if (health.ready) {
    dot.className = "dot ok";
    $("backend-status").textContent = "Checker ready";
    const model = health.model;
    $("backend-detail").textContent = `${settings.backendUrl}${model?.id ? ` · model ${model.id}` : ""}`;
  } else if (health.ok) {
    dot.className = "dot warn";
    $("backend-status").textContent = "Checker starting";
    $("backend-detail").textContent = `${settings.backendUrl}: ${health.message}`;
  } else {
    dot.className = "dot down";
    $("backend-status").textContent = "Checker offline";
    $("backend-detail").textContent = `Cannot reach ${settings.backendUrl}. Start it (python -m server) or change the address in Options.`;
  }
}

async function showHistory() {
  const items = await new CheckHistory(chrome.storage.local).list();
  const list = $("history");
  list.replaceChildren();
  $("history-empty").hidden = items.length > 0;
  for (const item of items) {
    const row = document.createElement("li");
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.style.background = item.colour;
    chip.textContent = item.text;
    const source = document.createElement("span");
    source.className = "source";
    source.textContent = item.url;
    source.title = item.url;
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = ago(item.at);
    row.append(chip, source);
    if (item.reportUrl) {
      const link = document.createElement("a");
      link.className = "report";
      link.href = item.reportUrl;
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = "report";
      row.append(link);
    }
    row.append(when);
    list.append(row);
  }
}

async function setupAutoLabel(settings) {
  const [tab] = await chrome.tabs.query({ active: true, currentWindow: true });
  const origin = siteOrigin(tab?.url || "");
  const box = $("auto-label");
  if (!origin) {
    $("auto-label-text").textContent = "Auto-label media on this site";
    $("auto-note").textContent = "Not available on this page.";
    return;
  }
  const host = new URL(origin).host;
  $("auto-label-text").textContent = `Auto-label media on ${host}`;
  $("auto-note").textContent = `Checks videos and images as they scroll into view, at most ${settings.requestsPerMinute} per minute.`;
  box.checked = settings.autoLabelSites.includes(origin);
  box.disabled = false;
  box.addEventListener("change", async () => {
    const enabled = box.checked;
    const pattern = sitePattern(origin);
    if (enabled) {
      // Asked for here, in the click: a permission request needs the user's gesture.
      const granted = await chrome.permissions.request({ origins: [pattern] }).catch(() => false);
      if (!granted) {
        box.checked = false;
        $("auto-note").textContent = `Auto-label needs access to ${host}; it was not granted.`;
        return;
      }
    }
    const current = await loadSettings(chrome.storage.local);
    const sites = current.autoLabelSites.filter((site) => site !== origin);
    if (enabled) sites.push(origin);
    await chrome.storage.local.set({ autoLabelSites: sites });
    const backendHost = new URL(current.backendUrl).hostname;
    const hostname = new URL(origin).hostname;
    if (!enabled && !BUILT_IN_BACKEND_HOSTS.includes(hostname) && hostname !== backendHost) {
      await chrome.permissions.remove({ origins: [pattern] }).catch(() => false);
    }
    await chrome.runtime.sendMessage({ type: "deepfake:sync-auto-label" }).catch(() => null);
  });
}

async function main() {
  const settings = await loadSettings(chrome.storage.local);
  await Promise.all([showBackend(settings), showHistory(), setupAutoLabel(settings)]);
}

chrome.storage.onChanged.addListener((changes, area) => {
  if (area === "local" && changes.history) showHistory().catch(() => {});
});

main().catch((error) => {
  $("backend-status").textContent = `Error: ${error.message}`;
});
