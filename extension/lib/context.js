// Snapshots of the DOM around an element, and finding elements again by their media URL or link.
//
// Runs in the page (content script) but only uses a small part of the DOM interface (tagName, getAttribute,
// parentElement, getRootNode, querySelectorAll, contains, href, currentSrc), so Node tests drive it with a tiny
// fake DOM. The snapshot is plain data for lib/permalinks.js.

const KEPT_ATTRIBUTES = ["permalink", "data-permalink", "data-testid", "data-e2e", "aria-posinset", "data-pagelet", "content-href"];
const MAX_DEPTH = 16;
const MAX_ANCHORS_PER_LEVEL = 40;
const MAX_ANCHORS = 160;

/** The parent of `element`, crossing out of shadow roots to their host. */
export function parentOf(element) {
  if (element.parentElement) return element.parentElement;
  const root = typeof element.getRootNode === "function" ? element.getRootNode() : null;
  return root && root.host ? root.host : null;
}

function attr(element, name) {
  const value = typeof element.getAttribute === "function" ? element.getAttribute(name) : null;
  return value == null ? null : String(value);
}

function anchorInfo(anchor) {
  const href = anchor.href ? String(anchor.href) : attr(anchor, "href");
  return {
    href,
    rel: attr(anchor, "rel") || "",
    time: Boolean(typeof anchor.querySelector === "function" && anchor.querySelector("time")),
  };
}

/** The media URL an element shows: currentSrc/src of img and video (or its first <source>), else null. */
export function mediaUrlOf(element) {
  const tag = String(element?.tagName || "").toLowerCase();
  if (tag !== "img" && tag !== "video" && tag !== "audio") return null;
  if (element.currentSrc) return String(element.currentSrc);
  if (element.src) return String(element.src);
  if (typeof element.querySelector === "function") {
    const source = element.querySelector("source[src]");
    if (source) return source.src ? String(source.src) : attr(source, "src");
  }
  return null;
}

/**
 * A plain-data snapshot of `element` and its ancestors: what lib/permalinks.js needs to find the post's link.
 * `doc` gives the page URL and its canonical link; `elementsOut`, when given, receives the element of each
 * ancestor entry (same order), so callers can go back from a snapshot entry to its element.
 */
export function collectContext(element, doc, elementsOut = null) {
  const ancestors = [];
  const seen = new Set();
  let total = 0;
  let previous = null;
  for (let node = element, depth = 0; node && depth < MAX_DEPTH; node = parentOf(node), depth += 1) {
    const tag = String(node.tagName || "").toLowerCase();
    if (!tag || tag === "html") break;
    const attrs = {};
    for (const name of KEPT_ATTRIBUTES) {
      const value = attr(node, name);
      if (value != null) attrs[name] = value.slice(0, 500);
    }
    const anchors = [];
    if (tag !== "body" && typeof node.querySelectorAll === "function" && total < MAX_ANCHORS) {
      for (const anchor of node.querySelectorAll("a[href]")) {
        if (anchors.length >= MAX_ANCHORS_PER_LEVEL || total >= MAX_ANCHORS) break;
        if (seen.has(anchor) || (previous && typeof previous.contains === "function" && previous.contains(anchor))) continue;
        seen.add(anchor);
        anchors.push(anchorInfo(anchor));
        total += 1;
      }
    }
    if (elementsOut) elementsOut.push(node);
    ancestors.push({
      tag,
      id: attr(node, "id") || "",
      role: attr(node, "role") || "",
      className: (attr(node, "class") || "").slice(0, 300),
      attrs,
      href: tag === "a" ? anchorInfo(node).href : "",
      anchors,
    });
    if (tag === "body") break;
    previous = node;
  }
  const canonical = doc && typeof doc.querySelector === "function" ? doc.querySelector('link[rel="canonical"][href]') : null;
  return {
    pageUrl: doc ? String(doc.URL || doc.location?.href || "") : "",
    canonicalUrl: canonical ? String(canonical.href || attr(canonical, "href")) : null,
    media: element ? { tag: String(element.tagName || "").toLowerCase(), src: mediaUrlOf(element) } : null,
    ancestors,
  };
}

/** The img/video (or audio) element a right-click was about: the element itself, a media element it is part of, or
 * the single media element inside it (sites lay transparent overlays over their videos). */
export function mediaElementFor(element) {
  for (let node = element, depth = 0; node && depth < 4; node = parentOf(node), depth += 1) {
    const tag = String(node.tagName || "").toLowerCase();
    if (tag === "img" || tag === "video" || tag === "audio") return node;
  }
  if (element && typeof element.querySelectorAll === "function") {
    const inside = [...element.querySelectorAll("video, img")];
    if (inside.length === 1) return inside[0];
  }
  return null;
}

/** Elements of `root` (and its open shadow roots) matching `selector`. */
export function queryAllDeep(root, selector, limit = 5000) {
  const found = [...root.querySelectorAll(selector)];
  if (found.length) return found;
  // Nothing in the light DOM: look into open shadow roots (Reddit's player lives in one), bounded.
  const results = [];
  const stack = [root];
  let visited = 0;
  while (stack.length && visited < limit) {
    const node = stack.pop();
    visited += 1;
    const children = node.shadowRoot ? [node.shadowRoot, ...(node.children || [])] : [...(node.children || [])];
    for (const child of children) {
      if (child.matches && child.matches(selector)) results.push(child);
      stack.push(child);
    }
  }
  return results;
}

/** The img/video elements showing `url`, best first (`isVisible(el)` ranks those on screen first). */
export function findMediaByUrl(root, url, isVisible = () => true) {
  if (!url) return [];
  const matches = queryAllDeep(root, "video, img, audio").filter((el) => {
    if (mediaUrlOf(el) === url || String(el.src || "") === url) return true;
    return [...(el.querySelectorAll ? el.querySelectorAll("source") : [])].some((source) => String(source.src || "") === url);
  });
  return rankVisible(matches, isVisible);
}

/** The links to `url`, best first. */
export function findLinksByUrl(root, url, isVisible = () => true) {
  if (!url) return [];
  const bare = url.split("#")[0];
  const matches = queryAllDeep(root, "a[href]").filter((a) => String(a.href || "") === url || String(a.href || "").split("#")[0] === bare);
  return rankVisible(matches, isVisible);
}

function rankVisible(elements, isVisible) {
  const visible = elements.filter((el) => isVisible(el));
  return [...visible, ...elements.filter((el) => !visible.includes(el))];
}
