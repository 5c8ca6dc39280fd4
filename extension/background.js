// The service worker: context menu, checks (lib/checks.js) and their labels, auto-label requests and their
// budget, the content scripts of auto-label sites. Every listener is registered at the top level, so an event
// that wakes a stopped worker reaches it; every promise is caught, so errors end as labels, never as unhandled
// rejections. Checks in progress live in chrome.storage.local and are resumed whenever the worker starts.

import { BackendClient, BackendError } from "./lib/backend.js";
import { RequestBudget } from "./lib/budget.js";
import { CheckHistory, CheckRunner, ResultCache, StoredMap } from "./lib/checks.js";
import { actionBadgeFor, labelForError, labelForProgress } from "./lib/labels.js";
import { BUILT_IN_BACKEND_HOSTS, hostPattern, loadSettings, sitePattern, siteOrigin } from "./lib/settings.js";
import { chooseAutoTarget, chooseTarget, isHttpUrl, MENU_IDS } from "./lib/target.js";

const RESUME_ALARM = "deepfake-resume";
const AUTO_SCRIPT_ID = "deepfake-auto-label";
const KEEP_ALIVE_MS = 20000;
const MENU_TITLE = "Check for deepfake";

const area = chrome.storage.local;
const history = new CheckHistory(area);
const cache = new ResultCache(area);
const budgetState = new StoredMap(chrome.storage.session || area, "budget");

function report(error, where) {
  console.warn(`deepfake checker: ${where}:`, error);
}

async function settings() {
  return loadSettings(area);
}

async function client() {
  const { backendUrl, apiKey } = await settings();
  return new BackendClient({ baseUrl: backendUrl, apiKey });
}

/** Whether the extension may talk to the backend (the default one is granted at install, others are asked for). */
async function mayReachBackend(backendUrl) {
  const url = new URL(backendUrl);
  if (BUILT_IN_BACKEND_HOSTS.includes(url.hostname) && url.protocol === "http:") return true;
  try {
    return await chrome.permissions.contains({ origins: [hostPattern(backendUrl)] });
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------------------------------------ delivery

async function setActionBadge(tabId, label) {
  if (typeof tabId !== "number" || tabId < 0) return;
  const { text, colour } = actionBadgeFor(label);
  try {
    await chrome.action.setBadgeBackgroundColor({ tabId, color: colour });
    await chrome.action.setBadgeText({ tabId, text });
    await chrome.action.setTitle({ tabId, title: label ? `Deepfake checker: ${label.text}` : "Deepfake checker" });
  } catch {
    // The tab is gone.
  }
}

/** Show `label` on the badge `destination.labelId` in its tab (and on the toolbar icon of that tab). */
async function deliver(destination, label, request) {
  if (!destination || typeof destination.tabId !== "number") return;
  if (request && request.manual) await setActionBadge(destination.tabId, label);
  if (!destination.labelId) return;
  const options = typeof destination.frameId === "number" ? { frameId: destination.frameId } : undefined;
  // Auto-label does not litter the feed with errors (an offline checker would mark every video): it drops them.
  const remove = request && !request.manual && label.state === "error";
  await chrome.tabs.sendMessage(destination.tabId, { type: "deepfake:label", labelId: destination.labelId, label, request, remove }, options);
}

async function finished(check, label) {
  if (label.state === "done") await cache.put(check.url, label);
  if (!check.manual) return;
  await history.add({
    id: check.id,
    url: check.url,
    via: check.via,
    pageUrl: check.pageUrl || null,
    at: Date.now(),
    state: label.state,
    verdict: label.verdict,
    probability: label.probability,
    confidence: label.confidence,
    text: label.text,
    colour: label.colour,
    reportUrl: label.reportUrl,
    code: label.code || null,
  });
}

// ------------------------------------------------------------------------------------- keep-alive, resuming

let keepAlive = 0;

function onActivity(running) {
  if (running > 0) {
    // Extension API calls keep the worker alive while a long request (an image analysed before the answer) is
    // pending; the alarm wakes a worker that was stopped anyway, and resume() carries on from storage.
    if (!keepAlive) keepAlive = setInterval(() => chrome.runtime.getPlatformInfo().catch(() => {}), KEEP_ALIVE_MS);
    chrome.alarms.create(RESUME_ALARM, { periodInMinutes: 0.5 }).catch((error) => report(error, "alarm"));
    return;
  }
  clearInterval(keepAlive);
  keepAlive = 0;
  runner
    .stored()
    .then((left) => (left.length ? null : chrome.alarms.clear(RESUME_ALARM)))
    .catch((error) => report(error, "alarm"));
}

const runner = new CheckRunner({ area, client, deliver, onFinished: finished, onActivity });

function resume() {
  runner.resume().catch((error) => report(error, "resume"));
}

// ------------------------------------------------------------------------------------------ context menu

function createMenu(properties) {
  return new Promise((resolve) => {
    chrome.contextMenus.create(properties, () => {
      if (chrome.runtime.lastError) report(chrome.runtime.lastError.message, "menu");
      resolve();
    });
  });
}

let menusQueue = Promise.resolve();

/** (Re)create the menu items; one run at a time, as install and start-up may both ask. */
function createMenus() {
  const run = menusQueue.then(async () => {
    await chrome.contextMenus.removeAll();
    await createMenu({ id: MENU_IDS.media, title: MENU_TITLE, contexts: ["image", "video"] });
    await createMenu({ id: MENU_IDS.link, title: `${MENU_TITLE} (linked post)`, contexts: ["link"] });
    await createMenu({ id: MENU_IDS.page, title: `${MENU_TITLE} (this page)`, contexts: ["page", "frame"] });
  });
  menusQueue = run.catch(() => undefined);
  return run;
}

/** Make sure the content script runs in the frame; false where it cannot (chrome:// pages, no access). */
async function ensureContentScript(tabId, frameId) {
  const target = { frameId };
  try {
    const answer = await chrome.tabs.sendMessage(tabId, { type: "deepfake:ping" }, target);
    if (answer?.ok) return true;
  } catch {
    // Not injected yet.
  }
  try {
    const results = await chrome.scripting.executeScript({ target: { tabId, frameIds: [frameId] }, files: ["content/loader.js"] });
    return results.some((result) => result.result === true);
  } catch (error) {
    report(error, "inject");
    return false;
  }
}

/**
 * What the context-menu listener runs (tests call it directly: the native menu cannot be automated). Resolves
 * with the final label of the check.
 */
async function handleMenuClick(info, tab) {
  const tabId = typeof tab?.id === "number" && tab.id >= 0 ? tab.id : null;
  const frameId = typeof info.frameId === "number" ? info.frameId : 0;
  let destination = tabId == null ? null : { tabId, frameId, labelId: null };
  let context = null;
  if (tabId != null && (await ensureContentScript(tabId, frameId))) {
    try {
      const located = await chrome.tabs.sendMessage(tabId, { type: "deepfake:locate", info, label: labelForProgress({ stage: "sending" }) }, { frameId });
      if (located?.labelId) {
        destination = { tabId, frameId, labelId: located.labelId };
        context = located.context || null;
      }
    } catch (error) {
      report(error, "locate");
    }
  }
  const target = chooseTarget(info, context);
  const request = { url: target.url || null, via: target.via || null, manual: true };
  if (target.error) {
    const label = labelForError({ code: target.error, message: target.message, retryable: false });
    await deliver(destination, label, request).catch(() => {});
    return label;
  }
  const { backendUrl } = await settings();
  if (!(await mayReachBackend(backendUrl))) {
    const label = labelForError({ code: "no_permission", backendUrl });
    await deliver(destination, label, request).catch(() => {});
    return label;
  }
  await bumpBudget((budget) => budget.record());
  return runner.start({ url: target.url, via: target.via, pageUrl: info.pageUrl || null, destination, manual: true });
}

// ---------------------------------------------------------------------------------------------- auto-label

let budgetQueue = Promise.resolve();

/** Run `change(budget)` on the stored request budget; resolves with what it returns. */
function bumpBudget(change) {
  const run = budgetQueue.then(async () => {
    const { requestsPerMinute } = await settings();
    let result;
    await budgetState.update((stored) => {
      const budget = new RequestBudget(requestsPerMinute, { times: Array.isArray(stored.times) ? stored.times : [] });
      result = change(budget);
      return budget.toJSON();
    });
    return result;
  });
  budgetQueue = run.catch(() => undefined);
  return run;
}

async function handleAutoCheck(message, sender) {
  const origin = siteOrigin(sender.url || sender.tab?.url || "");
  const current = await settings();
  if (!origin || !current.autoLabelSites.includes(origin)) return { status: "skipped", reason: "off" };
  const target = chooseAutoTarget(message.srcUrl, message.context);
  if (!target) return { status: "skipped", reason: "no_target" };
  const destination = { tabId: sender.tab.id, frameId: sender.frameId ?? 0, labelId: message.labelId };
  const request = { url: target.url, via: target.via, manual: false };
  const known = await cache.get(target.url);
  if (known) {
    deliver(destination, known, request).catch(() => {});
    return { status: "cached" };
  }
  if (!(await mayReachBackend(current.backendUrl))) return { status: "skipped", reason: "no_permission" };
  const running = (await runner.stored()).some((check) => check.url === target.url);
  if (!running) {
    const wait = await bumpBudget((budget) => (budget.tryTake() ? 0 : Math.max(1000, budget.msUntilNext())));
    if (wait) return { status: "later", retryInMs: wait + Math.round(Math.random() * 1000) };
  }
  runner.start({ url: target.url, via: target.via, pageUrl: sender.url || null, destination, manual: false }).catch((error) => report(error, "auto-check"));
  return { status: "started" };
}

let syncQueue = Promise.resolve();

/** Register the content script on the opted-in sites the extension has access to, and tell open tabs. One at a
 * time: a settings change and the page that made it both ask for it. */
function syncAutoLabel() {
  const run = syncQueue.then(syncAutoLabelNow);
  syncQueue = run.catch(() => undefined);
  return run;
}

async function syncAutoLabelNow() {
  const { autoLabelSites } = await settings();
  const patterns = [];
  for (const origin of autoLabelSites) {
    const pattern = sitePattern(origin);
    if (await chrome.permissions.contains({ origins: [pattern] }).catch(() => false)) patterns.push(pattern);
  }
  const registered = await chrome.scripting.getRegisteredContentScripts({ ids: [AUTO_SCRIPT_ID] });
  if (!patterns.length) {
    if (registered.length) await chrome.scripting.unregisterContentScripts({ ids: [AUTO_SCRIPT_ID] });
  } else {
    const script = { id: AUTO_SCRIPT_ID, matches: patterns, js: ["content/loader.js"], runAt: "document_idle", persistAcrossSessions: true };
    if (registered.length) await chrome.scripting.updateContentScripts([script]);
    else await chrome.scripting.registerContentScripts([script]);
  }
  // Tabs already open: switch auto-label on (injecting where needed) or off.
  const tabs = await chrome.tabs.query({});
  await Promise.all(
    tabs.map(async (tab) => {
      const origin = siteOrigin(tab.url || "");
      if (!origin) return; // no access to this tab's address: not one of ours
      const enabled = patterns.includes(sitePattern(origin));
      try {
        if (enabled) await ensureContentScript(tab.id, 0);
        await chrome.tabs.sendMessage(tab.id, { type: "deepfake:auto-label", enabled }, { frameId: 0 });
      } catch {
        // No content script there, nothing to switch off.
      }
    }),
  );
}

// ----------------------------------------------------------------------------------------------- messages

async function onMessage(message, sender) {
  switch (message.type) {
    case "deepfake:hello": {
      const origin = siteOrigin(sender.url || "");
      const { autoLabelSites } = await settings();
      return { autoLabel: Boolean(origin && autoLabelSites.includes(origin)) };
    }
    case "deepfake:auto-check":
      return handleAutoCheck(message, sender);
    case "deepfake:open-report": {
      const { backendUrl } = await settings();
      // Only the backend's own pages: a page cannot make the extension open anything else.
      if (!isHttpUrl(message.url) || new URL(message.url).origin !== new URL(backendUrl).origin) return { opened: false };
      await chrome.tabs.create({ url: message.url, openerTabId: sender.tab?.id, index: sender.tab ? sender.tab.index + 1 : undefined });
      return { opened: true };
    }
    case "deepfake:retry": {
      const url = message.request?.url;
      if (!sender.tab || !isHttpUrl(url)) return { started: false };
      const destination = { tabId: sender.tab.id, frameId: sender.frameId ?? 0, labelId: message.labelId };
      const { backendUrl } = await settings();
      if (!(await mayReachBackend(backendUrl))) {
        await deliver(destination, labelForError({ code: "no_permission", backendUrl }), { url, via: message.request.via, manual: true });
        return { started: false };
      }
      await bumpBudget((budget) => budget.record());
      runner.start({ url, via: message.request.via || "media", pageUrl: sender.url || null, destination, manual: true }).catch((error) => report(error, "retry"));
      return { started: true };
    }
    case "deepfake:sync-auto-label":
      await syncAutoLabel();
      return { ok: true };
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------- top-level listeners

chrome.runtime.onInstalled.addListener(() => {
  createMenus().catch((error) => report(error, "menus"));
  syncAutoLabel().catch((error) => report(error, "auto-label"));
});

chrome.runtime.onStartup.addListener(() => {
  createMenus().catch((error) => report(error, "menus"));
  resume();
});

chrome.contextMenus.onClicked.addListener((info, tab) => {
  handleMenuClick(info, tab).catch((error) => report(error, "menu click"));
});

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  if (sender.id !== chrome.runtime.id || !message || typeof message.type !== "string") return false;
  onMessage(message, sender)
    .then(sendResponse, (error) => {
      report(error, message.type);
      sendResponse({ error: error instanceof BackendError ? error.toJSON() : String(error?.message || error) });
    })
    .catch(() => {});
  return true; // the answer comes asynchronously
});

chrome.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === RESUME_ALARM) resume();
});

chrome.storage.onChanged.addListener((changes, areaName) => {
  if (areaName === "local" && changes.autoLabelSites) syncAutoLabel().catch((error) => report(error, "auto-label"));
});

chrome.permissions.onRemoved.addListener(() => {
  syncAutoLabel().catch((error) => report(error, "auto-label"));
});

// A last resort: anything that still slips through is logged, not left as an unhandled rejection.
let unhandledRejections = 0;
self.addEventListener("unhandledrejection", (event) => {
  unhandledRejections += 1;
  report(event.reason, "unhandled");
  event.preventDefault();
});

// Every start of the worker (after it was stopped, or the browser restarted) carries on with stored checks.
resume();

// For tests and debugging from the worker's console.
self.deepfakeChecker = {
  handleMenuClick,
  handleAutoCheck,
  ensureContentScript,
  syncAutoLabel,
  runner,
  history,
  cache,
  settings,
  unhandledRejections: () => unhandledRejections,
};
