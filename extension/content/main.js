// The content script: remembers what was right-clicked, finds the element a check is about, shows its badge
// and keeps it on that element when the feed re-renders, and (when the site is opted in) labels media as it
// scrolls into view. All decisions about what to send live in the service worker; this module only knows the DOM.

import { collectContext, findLinksByUrl, findMediaByUrl, mediaElementFor, mediaUrlOf, parentOf, queryAllDeep } from "../lib/context.js";
import { findPermalink, siteFor } from "../lib/permalinks.js";
import { chooseAutoTarget, chooseTarget, MENU_IDS } from "../lib/target.js";
import { BadgeLayer } from "./badge.js";

const RECENT_MS = 30000; // a right-click older than this is not what a menu click is about
const AUTO_MIN_WIDTH = 160;
const AUTO_MIN_HEIGHT = 120;
const AUTO_DWELL_MS = 700;

let lastTarget = null; // {element, at}
let layer = null;
let observer = null;
let repairTimer = 0;
let autoLabeler = null;
const records = new Map(); // labelId -> {element, post, match: {kind, srcUrl, linkUrl, permalink, tag}, request}

function newLabelId() {
  return `l${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

function isVisible(element) {
  if (!element || typeof element.getBoundingClientRect !== "function") return false;
  const rect = element.getBoundingClientRect();
  return rect.width > 0 && rect.height > 0 && rect.bottom > 0 && rect.right > 0 && rect.top < innerHeight && rect.left < innerWidth;
}

function send(message) {
  try {
    return chrome.runtime.sendMessage(message).catch(() => null);
  } catch {
    return Promise.resolve(null); // the extension was reloaded: this script is orphaned
  }
}

// ------------------------------------------------------------------------------------------ posts and targets

/** The post container around `element` (by the site's rules), or null. */
function postOf(element) {
  const elements = [];
  const context = collectContext(element, document, elements);
  const site = siteFor(location.href);
  const index = context.ancestors.findIndex((node, i) => i > 0 && site.isPost({ ...node, attrs: node.attrs || {} }));
  return index > 0 ? elements[index] : null;
}

function closestLink(element) {
  for (let node = element, depth = 0; node && depth < 8; node = parentOf(node), depth += 1) {
    if (String(node.tagName || "").toLowerCase() === "a" && node.href) return node;
  }
  return null;
}

function recentTarget() {
  if (!lastTarget || Date.now() - lastTarget.at > RECENT_MS || !lastTarget.element.isConnected) return null;
  return lastTarget.element;
}

/** The element a menu click is about, the snapshot around it and where its badge goes. */
function locate(info) {
  const recent = recentTarget();
  let element = null;
  let anchor = null;
  let kind = "page";
  if (info.menuItemId === MENU_IDS.media) {
    kind = "media";
    element = recent ? mediaElementFor(recent) : null;
    if (element && info.srcUrl && mediaUrlOf(element) !== info.srcUrl && String(element.src || "") !== info.srcUrl) element = null;
    if (!element) element = findMediaByUrl(document, info.srcUrl, isVisible)[0] || null;
    anchor = element;
  } else if (info.menuItemId === MENU_IDS.link) {
    kind = "link";
    element = recent ? closestLink(recent) : null;
    if (element && info.linkUrl && element.href !== info.linkUrl) element = null;
    if (!element) element = findLinksByUrl(document, info.linkUrl, isVisible)[0] || null;
    anchor = element;
  } else {
    element = recent;
  }
  const context = element ? collectContext(element, document) : collectContext(document.body || document.documentElement, document);
  if (!element) context.ancestors = [];
  if (kind === "page") {
    // The page item on a post (an overlay hid the video): label the post's media, else the page.
    const target = chooseTarget({ ...info, pageUrl: location.href }, context);
    if (element && target.via === "permalink") anchor = mediaElementFor(element) || postOf(element) || element;
  }
  const srcUrl = kind === "media" ? info.srcUrl || mediaUrlOf(element) : null;
  const permalink = element ? findPermalink(context) : null;
  return {
    element: anchor,
    context,
    match: {
      kind,
      tag: anchor ? String(anchor.tagName || "").toLowerCase() : null,
      srcUrl,
      linkUrl: kind === "link" ? info.linkUrl : null,
      permalink: permalink && permalink.from !== "page" ? permalink.url : null,
      text: kind === "link" && anchor ? textOf(anchor) : null,
    },
  };
}

// -------------------------------------------------------------------------------------------------- badges

function showLabel(labelId, label, request) {
  const record = records.get(labelId);
  if (!record) return false;
  if (request) record.request = request;
  if (!label) return true; // drawn when its first label comes
  layer.upsert(labelId, label, record.element);
  markPost(record, label);
  return true;
}

function markPost(record, label) {
  if (!record.post || !record.post.isConnected) record.post = record.element ? postOf(record.element) : null;
  if (!record.post) return;
  if (label && label.state !== "checking") record.post.setAttribute("data-deepfake-post-verdict", label.verdict || "error");
  else record.post.removeAttribute("data-deepfake-post-verdict");
}

function addRecord(labelId, element, match, label) {
  records.set(labelId, { element, post: null, match, request: null });
  showLabel(labelId, label, null);
  watchPage();
}

function dismiss(labelId) {
  const record = records.get(labelId);
  if (record?.post) record.post.removeAttribute("data-deepfake-post-verdict");
  records.delete(labelId);
  layer.remove(labelId);
}

function activate(labelId) {
  const label = layer.label(labelId);
  const record = records.get(labelId);
  if (!label || !record) return;
  if (label.reportUrl) send({ type: "deepfake:open-report", url: label.reportUrl });
  else if (label.state === "error" && record.request && label.retryable !== false) {
    send({ type: "deepfake:retry", labelId, request: record.request });
  }
}

/** How well `element` stands in for the element a badge was on: same post (+4), same text (+2), on screen (+1). */
function likeness(element, match) {
  let score = 0;
  if (match.permalink) {
    const found = findPermalink(collectContext(element, document));
    if (found && found.from !== "page" && found.url === match.permalink) score += 4;
  }
  if (match.text != null && textOf(element) === match.text) score += 2;
  if (isVisible(element)) score += 1;
  return score;
}

function textOf(element) {
  return String(element?.textContent || "").trim().slice(0, 200);
}

/** Put badges whose element left the page back on the element that replaced it (same media, link or post). */
function repair() {
  repairTimer = 0;
  const taken = new Set([...records.values()].map((record) => record.element).filter((element) => element && element.isConnected));
  for (const [labelId, record] of records) {
    if (!record.element || record.element.isConnected) continue;
    const { match } = record;
    let candidates = [];
    let minimum = 0;
    if (match.kind === "link") candidates = findLinksByUrl(document, match.linkUrl);
    else if (match.srcUrl) candidates = findMediaByUrl(document, match.srcUrl);
    if (!candidates.length && match.permalink && match.tag) {
      // A blob: video gets a new blob: URL when re-created: its post's permalink identifies it.
      candidates = queryAllDeep(document, match.tag).slice(0, 300);
      minimum = 4;
    }
    let best = null;
    let bestScore = -1;
    for (const candidate of candidates) {
      if (taken.has(candidate)) continue; // two copies of one image keep a badge each
      const score = likeness(candidate, match);
      if (score >= minimum && score > bestScore) [best, bestScore] = [candidate, score];
    }
    if (best) {
      taken.add(best);
      record.element = best;
      record.post = null;
      layer.attach(labelId, best);
      markPost(record, layer.label(labelId));
    }
  }
  layer.schedule();
}

function watchPage() {
  if (observer) return;
  observer = new MutationObserver(() => {
    if (!repairTimer) repairTimer = setTimeout(repair, 150);
    autoLabeler?.scanSoon();
  });
  observer.observe(document.documentElement, { childList: true, subtree: true });
}

// ----------------------------------------------------------------------------------------------- auto-label

class AutoLabeler {
  constructor() {
    this.seen = new WeakSet();
    this.timers = new Map();
    this.labelled = new WeakMap(); // element -> labelId
    this.scanTimer = 0;
    this.io = new IntersectionObserver((entries) => this.#onIntersect(entries), { threshold: 0.5 });
    this.scan();
    watchPage();
  }

  stop() {
    this.io.disconnect();
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    clearTimeout(this.scanTimer);
  }

  scanSoon() {
    if (!this.scanTimer) this.scanTimer = setTimeout(() => this.scan(), 300);
  }

  scan() {
    this.scanTimer = 0;
    for (const element of document.querySelectorAll("video, img")) {
      if (this.seen.has(element)) continue;
      this.seen.add(element);
      this.io.observe(element);
    }
  }

  #onIntersect(entries) {
    for (const entry of entries) {
      const element = entry.target;
      if (!entry.isIntersecting) {
        clearTimeout(this.timers.get(element));
        this.timers.delete(element);
      } else if (!this.timers.has(element) && !this.labelled.has(element)) {
        this.timers.set(element, setTimeout(() => this.#request(element), AUTO_DWELL_MS));
      }
    }
  }

  async #request(element) {
    this.timers.delete(element);
    if (!element.isConnected || !isVisible(element) || this.labelled.has(element)) return;
    const rect = element.getBoundingClientRect();
    if (rect.width < AUTO_MIN_WIDTH || rect.height < AUTO_MIN_HEIGHT) return; // avatars, icons, emoji
    const srcUrl = mediaUrlOf(element);
    const context = collectContext(element, document);
    const target = chooseAutoTarget(srcUrl, context);
    if (!target) return;
    for (const record of records.values()) if (record.element === element) return; // already labelled by hand
    const labelId = newLabelId();
    this.labelled.set(element, labelId);
    const permalink = findPermalink(context);
    addRecord(
      labelId,
      element,
      { kind: "media", tag: element.tagName.toLowerCase(), srcUrl, linkUrl: null, permalink: permalink && permalink.from !== "page" ? permalink.url : null, text: null },
      null,
    );
    const answer = await send({ type: "deepfake:auto-check", labelId, srcUrl, context });
    if (!answer || answer.status === "skipped") {
      dismiss(labelId);
    } else if (answer.status === "later") {
      dismiss(labelId);
      this.labelled.delete(element);
      setTimeout(() => {
        if (element.isConnected && isVisible(element)) {
          this.#request(element);
        } else {
          // Out of view now: watch it again, it is requested when it comes back.
          this.seen.delete(element);
          this.io.unobserve(element);
          this.scanSoon();
        }
      }, Math.max(1000, Number(answer.retryInMs) || 5000));
    }
  }
}

function setAutoLabel(enabled) {
  if (enabled && !autoLabeler) autoLabeler = new AutoLabeler();
  else if (!enabled && autoLabeler) {
    autoLabeler.stop();
    autoLabeler = null;
  }
}

// ------------------------------------------------------------------------------------------------ messages

function onMessage(message, sender, sendResponse) {
  if (sender.id !== chrome.runtime.id || !message || typeof message.type !== "string") return false;
  switch (message.type) {
    case "deepfake:ping":
      sendResponse({ ok: true });
      return false;
    case "deepfake:locate": {
      const { element, context, match } = locate(message.info || {});
      // Checking an element again replaces its badge rather than stacking a second one on it.
      const existing = element ? [...records].find(([, record]) => record.element === element)?.[0] : null;
      const labelId = existing || newLabelId();
      addRecord(labelId, element, match, message.label || null);
      sendResponse({ labelId, found: Boolean(element), context });
      return false;
    }
    case "deepfake:label":
      if (message.remove) {
        dismiss(message.labelId);
        sendResponse({ shown: false });
      } else {
        sendResponse({ shown: showLabel(message.labelId, message.label, message.request) });
      }
      return false;
    case "deepfake:auto-label":
      setAutoLabel(Boolean(message.enabled));
      sendResponse({ ok: true });
      return false;
    default:
      return false;
  }
}

export async function start() {
  layer = new BadgeLayer(document, { onActivate: activate, onDismiss: dismiss });
  // Capture phase: pages that stop the event in their own handlers still let us see what was right-clicked.
  document.addEventListener(
    "contextmenu",
    (event) => {
      const path = typeof event.composedPath === "function" ? event.composedPath() : [];
      const element = path.find((node) => node && node.nodeType === 1) || event.target;
      if (element && element.nodeType === 1) lastTarget = { element, at: Date.now() };
    },
    true,
  );
  chrome.runtime.onMessage.addListener(onMessage);
  const hello = await send({ type: "deepfake:hello" });
  setAutoLabel(Boolean(hello?.autoLabel));
}
