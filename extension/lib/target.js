// Decides which URL a check sends to the backend for a context-menu click (or an auto-label candidate).
//
// The backend fetches what it is given, so it must be something it can fetch: an http(s) media URL when the
// element has one; for blob:/MediaSource videos (most social sites), data: images or elements without a URL,
// the post's permalink found near the element (lib/permalinks.js); else the page's URL. Never blob:, data:,
// file:, or anything but http(s).

import { findPermalink } from "./permalinks.js";

export const MENU_IDS = Object.freeze({
  media: "deepfake-check-media",
  link: "deepfake-check-link",
  page: "deepfake-check-page",
});

/** Whether `value` is an absolute http(s) URL the backend could fetch. */
export function isHttpUrl(value) {
  if (typeof value !== "string" || !value) return false;
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") && Boolean(url.hostname);
  } catch {
    return false;
  }
}

function withoutFragment(value) {
  const url = new URL(value);
  url.hash = "";
  return url.href;
}

/**
 * What to check for a click: {url, via, site?} where via is "media", "link", "permalink" or "page";
 * or {error: "no_target", message} when nothing fetchable is at hand (a blob: video on a file:// page...).
 *
 * `info` has the fields of chrome.contextMenus.OnClickData that matter (menuItemId, srcUrl, linkUrl, pageUrl,
 * frameUrl, mediaType); `context` is the DOM snapshot around the clicked element (lib/context.js), when known.
 */
export function chooseTarget(info, context = null) {
  const menuItemId = info?.menuItemId;
  const pageUrl = isHttpUrl(info?.frameUrl) ? info.frameUrl : isHttpUrl(info?.pageUrl) ? info.pageUrl : null;
  const snapshot = context ? { ...context, pageUrl: context.pageUrl || pageUrl } : pageUrl ? { pageUrl, ancestors: [] } : null;

  if (menuItemId === MENU_IDS.media) {
    if (isHttpUrl(info.srcUrl)) return { url: info.srcUrl, via: "media" };
    const found = findPermalink(snapshot);
    if (found) return { url: found.url, via: "permalink", site: found.site };
  } else if (menuItemId === MENU_IDS.link) {
    if (isHttpUrl(info.linkUrl)) return { url: withoutFragment(info.linkUrl), via: "link" };
  } else if (menuItemId === MENU_IDS.page) {
    // Right-clicking a post where the site covers its video with an overlay gives only the page menu: the
    // post around the clicked spot is what the person means, when there is one.
    const found = findPermalink(snapshot);
    if (found && found.from !== "page") return { url: found.url, via: "permalink", site: found.site };
    if (found) return { url: found.url, via: "page", site: found.site };
  } else {
    return { error: "no_target", message: `unknown menu item ${String(menuItemId)}` };
  }
  if (pageUrl) return { url: withoutFragment(pageUrl), via: "page" };
  return { error: "no_target", message: "nothing here can be checked: the page has no http(s) address" };
}

/**
 * What to check for a media element met while scrolling (auto-label), or null to leave it alone: its http(s)
 * URL, else its post's permalink. Never the page URL: a feed page is not the element's media.
 */
export function chooseAutoTarget(srcUrl, context) {
  if (isHttpUrl(srcUrl)) return { url: srcUrl, via: "media" };
  const found = findPermalink(context);
  if (found && found.from !== "page") return { url: found.url, via: "permalink", site: found.site };
  return null;
}
