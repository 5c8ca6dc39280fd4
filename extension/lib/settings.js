// The extension's settings (chrome.storage.local), their defaults and validation, and the match patterns they
// need as host permissions.

export const DEFAULT_BACKEND_URL = "http://127.0.0.1:8000";

export const DEFAULTS = Object.freeze({
  backendUrl: DEFAULT_BACKEND_URL,
  apiKey: "",
  autoLabelSites: [], // origins, e.g. "https://www.youtube.com"
  requestsPerMinute: 10, // analyse requests in any minute (auto-label waits when spent)
});

export const REQUESTS_PER_MINUTE_RANGE = Object.freeze([1, 120]);

/** Hosts the manifest grants at install (the default backend on this machine); others are asked for. */
export const BUILT_IN_BACKEND_HOSTS = Object.freeze(["127.0.0.1", "localhost"]);

/** `raw` as a backend base URL ("http://host:port" or with a path prefix, no trailing slash), or null. */
export function normalizeBackendUrl(raw) {
  if (typeof raw !== "string") return null;
  let text = raw.trim();
  if (!text) return null;
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) text = `http://${text}`;
  let url;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || !url.hostname || url.username || url.password) return null;
  const path = url.pathname.replace(/\/+$/, "");
  return `${url.protocol}//${url.host}${path}`;
}

/** The host-permission match pattern covering a URL (any port), e.g. "https://checker.example.com/*". */
export function hostPattern(url) {
  const parsed = new URL(url);
  const host = parsed.hostname.includes(":") ? `[${parsed.hostname.replace(/^\[|\]$/g, "")}]` : parsed.hostname;
  return `${parsed.protocol}//${host}/*`;
}

/** The origin of an http(s) page ("https://www.youtube.com"), or null for other pages. */
export function siteOrigin(pageUrl) {
  try {
    const url = new URL(pageUrl);
    return url.protocol === "http:" || url.protocol === "https:" ? url.origin : null;
  } catch {
    return null;
  }
}

/** The match pattern for the pages of a site origin ("https://www.youtube.com/*"; the port is kept). */
export function sitePattern(origin) {
  return `${new URL(origin).origin}/*`;
}

/** Site origins from free text (one per line or comma-separated; bare hosts get https://). Invalid ones dropped. */
export function parseSites(text) {
  const sites = [];
  for (const part of String(text || "").split(/[\s,]+/)) {
    if (!part) continue;
    const origin = siteOrigin(/^[a-z][a-z0-9+.-]*:\/\//i.test(part) ? part : `https://${part}`);
    if (origin && !sites.includes(origin)) sites.push(origin);
  }
  return sites;
}

/** Settings as stored, completed with defaults and repaired where invalid. */
export function normalizeSettings(stored = {}) {
  const settings = { ...DEFAULTS };
  const backendUrl = normalizeBackendUrl(stored.backendUrl);
  if (backendUrl) settings.backendUrl = backendUrl;
  if (typeof stored.apiKey === "string") settings.apiKey = stored.apiKey.trim();
  if (Array.isArray(stored.autoLabelSites)) settings.autoLabelSites = parseSites(stored.autoLabelSites.join("\n"));
  const rate = Math.floor(Number(stored.requestsPerMinute));
  if (Number.isFinite(rate)) {
    const [low, high] = REQUESTS_PER_MINUTE_RANGE;
    settings.requestsPerMinute = Math.min(high, Math.max(low, rate));
  }
  return settings;
}

/** Read the settings from a chrome.storage area (or anything with the same `get`). */
export async function loadSettings(area) {
  const stored = await area.get(Object.keys(DEFAULTS));
  return normalizeSettings(stored || {});
}
