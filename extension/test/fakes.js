// Small stand-ins for what the extension meets in the browser: a chrome.storage area, a DOM tree, fetch.

/** chrome.storage.local's get/set over a Map (values copied through JSON, as Chrome does). */
export class FakeStorageArea {
  constructor(initial = {}) {
    this.data = new Map(Object.entries(JSON.parse(JSON.stringify(initial))));
  }

  async get(keys) {
    const names = keys == null ? [...this.data.keys()] : typeof keys === "string" ? [keys] : Array.isArray(keys) ? keys : Object.keys(keys);
    const out = {};
    for (const name of names) if (this.data.has(name)) out[name] = JSON.parse(JSON.stringify(this.data.get(name)));
    return out;
  }

  async set(items) {
    for (const [name, value] of Object.entries(items)) this.data.set(name, JSON.parse(JSON.stringify(value)));
  }
}

function parseSelector(part) {
  const match = part.trim().match(/^([a-z0-9-]*)((?:\[[^\]]+\])*)$/i);
  if (!match) throw new Error(`fake DOM: unsupported selector ${part}`);
  const attrs = [...match[2].matchAll(/\[([a-z-]+)(?:="([^"]*)")?\]/gi)].map((m) => [m[1], m[2]]);
  return { tag: match[1].toLowerCase(), attrs };
}

/** Just enough of an Element for lib/context.js: tags, attributes, parents, children, a few selectors. */
export class FakeElement {
  constructor(tag, attrs = {}, children = []) {
    this.tagName = tag.toUpperCase();
    this.attrs = { ...attrs };
    this.children = [];
    this.parentElement = null;
    this.base = "https://example.com/";
    for (const child of children) this.append(child);
  }

  append(child) {
    child.parentElement = this;
    this.children.push(child);
    return child;
  }

  setBase(base) {
    this.base = base;
    for (const child of this.children) child.setBase(base);
    return this;
  }

  getAttribute(name) {
    return Object.hasOwn(this.attrs, name) ? String(this.attrs[name]) : null;
  }

  #resolve(name) {
    const value = this.getAttribute(name);
    if (value == null) return "";
    try {
      return new URL(value, this.base).href;
    } catch {
      return value;
    }
  }

  get href() {
    return this.tagName === "A" || this.tagName === "LINK" ? this.#resolve("href") : undefined;
  }

  get src() {
    return this.#resolve("src");
  }

  get currentSrc() {
    return this.attrs.currentSrc ?? this.src;
  }

  get id() {
    return this.getAttribute("id") || "";
  }

  get isConnected() {
    return true;
  }

  getRootNode() {
    let node = this;
    while (node.parentElement) node = node.parentElement;
    return node;
  }

  matches(selector) {
    return selector.split(",").some((part) => {
      const { tag, attrs } = parseSelector(part);
      if (tag && tag !== this.tagName.toLowerCase()) return false;
      return attrs.every(([name, value]) => (value === undefined ? this.getAttribute(name) != null : this.getAttribute(name) === value));
    });
  }

  *descendants() {
    for (const child of this.children) {
      yield child;
      yield* child.descendants();
    }
  }

  querySelectorAll(selector) {
    return [...this.descendants()].filter((el) => el.matches(selector));
  }

  querySelector(selector) {
    return this.querySelectorAll(selector)[0] || null;
  }

  contains(other) {
    for (let node = other; node; node = node.parentElement) if (node === this) return true;
    return false;
  }
}

/** h("article", {role: "article"}, h("a", {href: "/p/1"}), ...) */
export function h(tag, attrs = {}, ...children) {
  return new FakeElement(tag, attrs, children);
}

/** A document over `html` (an <html> FakeElement) at `url`. */
export function fakeDocument(url, body) {
  const html = h("html", {}, h("head"), body);
  html.setBase(url);
  return {
    URL: url,
    documentElement: html,
    body,
    querySelector: (selector) => html.querySelector(selector),
    querySelectorAll: (selector) => html.querySelectorAll(selector),
  };
}

/** A fetch that answers from a list of [matcher, response] routes and records every request. */
export function fakeFetch(routes) {
  const calls = [];
  const fetchImpl = async (url, init = {}) => {
    calls.push({ url, method: init.method || "GET", headers: init.headers || {}, body: init.body ? JSON.parse(init.body) : undefined });
    for (const [matcher, answer] of routes) {
      // A string matches the end of the URL's path (its query, e.g. ?wait=20, aside) or the whole URL.
      const path = String(url).split("?")[0];
      if (typeof matcher === "string" ? path.endsWith(matcher) || url.endsWith(matcher) : matcher(url, init)) {
        const value = typeof answer === "function" ? await answer(url, init, calls) : answer;
        if (value instanceof Error) throw value;
        return jsonResponse(value.status ?? 200, value.body, value.headers);
      }
    }
    throw new TypeError("Failed to fetch");
  };
  return { fetchImpl, calls };
}

export function jsonResponse(status, body, headers = {}) {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
  return {
    status,
    ok: status >= 200 && status < 300,
    headers: { get: (name) => lower[name.toLowerCase()] ?? null },
    json: async () => {
      if (typeof body === "string") throw new SyntaxError("not JSON");
      return JSON.parse(JSON.stringify(body));
    },
  };
}

/** A Report as the backend answers it (server/api.py, schema_version 1.1). */
export function report(verdict = "fake", probability = 0.83, overrides = {}) {
  return {
    schema_version: "1.1",
    verdict,
    fake_probability: verdict === "no_face" ? null : probability,
    confidence: verdict === "no_face" ? null : verdict === "real" ? 1 - probability : probability,
    media: { kind: "video", width: 640, height: 480, duration_s: 15.8, fps: 25, frames_analyzed: 16 },
    frames: [],
    model: { id: "default", revision: "3f2a9c1d4e5b6a7f", architecture: "mobilenet_v3_small_lstm" },
    timings_ms: { fetch: 120, decode: 290, faces: 110, model: 50, total: 600 },
    source: "https://example.com/v.mp4",
    warnings: [],
    provenance: { c2pa: null, iptc_digital_source_type: null, ai_generated: null },
    ...overrides,
  };
}
