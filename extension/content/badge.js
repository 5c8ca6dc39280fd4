// Draws the badges: one small overlay per label, in its own shadow root, positioned over the element it
// labels (position: fixed, recomputed on scroll, resize and layout changes), so the page's layout and styles
// are never touched. Only the badge itself takes pointer events; clicks on it never reach the page.

const STYLE = `
:host { all: initial; position: fixed; z-index: 2147483647; pointer-events: none; }
.badge {
  pointer-events: auto; cursor: pointer; position: relative; display: inline-flex; align-items: center; gap: 6px;
  box-sizing: border-box; max-width: 260px; padding: 3px 6px 3px 9px; border-radius: 999px;
  font: 600 12px/18px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #fff;
  background: var(--colour, #0969da); box-shadow: 0 1px 4px rgba(0, 0, 0, .35); white-space: nowrap; user-select: none;
}
.badge:focus-visible { outline: 2px solid #fff; outline-offset: 1px; }
.text { overflow: hidden; text-overflow: ellipsis; }
.close {
  all: unset; cursor: pointer; width: 16px; height: 16px; border-radius: 50%; text-align: center;
  font: 700 12px/16px system-ui, sans-serif; color: #fff; opacity: .75;
}
.close:hover, .close:focus-visible { opacity: 1; background: rgba(255, 255, 255, .25); }
.details {
  display: none; position: absolute; top: calc(100% + 6px); left: 0; z-index: 1; min-width: 220px; max-width: 320px;
  padding: 8px 10px; border-radius: 8px; background: #fff; color: #1f2328; box-shadow: 0 4px 16px rgba(0, 0, 0, .3);
  font: 400 12px/17px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; white-space: normal; cursor: default;
}
.details strong { display: block; margin-bottom: 4px; color: var(--colour, #0969da); font-weight: 700; }
.details ul { margin: 0; padding: 0 0 0 16px; }
.details li { margin: 1px 0; overflow-wrap: anywhere; }
.badge:hover .details, .badge:focus-visible .details { display: block; }
.spinner {
  width: 10px; height: 10px; border: 2px solid rgba(255, 255, 255, .45); border-top-color: #fff; border-radius: 50%;
  animation: spin 1s linear infinite;
}
@keyframes spin { to { transform: rotate(360deg); } }
`;

const MARGIN = 6;

function makeSheet(doc) {
  try {
    const sheet = new doc.defaultView.CSSStyleSheet();
    sheet.replaceSync(STYLE);
    return sheet;
  } catch {
    return null;
  }
}

export class BadgeLayer {
  constructor(doc, { onActivate = () => {}, onDismiss = () => {} } = {}) {
    this.doc = doc;
    this.onActivate = onActivate;
    this.onDismiss = onDismiss;
    this.badges = new Map(); // labelId -> {host, shadow, element, label}
    this.sheet = makeSheet(doc);
    this.frame = 0;
    this.timer = 0;
    this.reposition = () => this.schedule();
  }

  #root() {
    if (!this.root || !this.root.isConnected) {
      // Custom tag names (never defined, never styled by pages) and a few inline styles, which beat page CSS.
      this.root = this.root || this.doc.createElement("deepfake-overlay");
      Object.assign(this.root.style, { position: "fixed", top: "0", left: "0", width: "0", height: "0", margin: "0", padding: "0", zIndex: "2147483647", pointerEvents: "none" });
      this.doc.documentElement.appendChild(this.root);
    }
    return this.root;
  }

  #listen(on) {
    const view = this.doc.defaultView;
    if (on && !this.listening) {
      view.addEventListener("scroll", this.reposition, { capture: true, passive: true });
      view.addEventListener("resize", this.reposition, { passive: true });
      // Animation frames do not run in background tabs: place the badges again when the tab is shown.
      this.doc.addEventListener("visibilitychange", this.reposition);
      this.timer = view.setInterval(this.reposition, 400); // layout shifts that fire no event
      this.listening = true;
    } else if (!on && this.listening) {
      view.removeEventListener("scroll", this.reposition, { capture: true });
      view.removeEventListener("resize", this.reposition);
      this.doc.removeEventListener("visibilitychange", this.reposition);
      view.clearInterval(this.timer);
      this.listening = false;
    }
  }

  /** Show (or update) the badge `labelId` over `element` (null: the page itself, top right). */
  upsert(labelId, label, element) {
    let badge = this.badges.get(labelId);
    if (!badge) {
      const host = this.doc.createElement("deepfake-badge");
      const shadow = host.attachShadow({ mode: "open" });
      if (this.sheet) shadow.adoptedStyleSheets = [this.sheet];
      else {
        const style = this.doc.createElement("style");
        style.textContent = STYLE;
        shadow.appendChild(style);
      }
      const box = this.doc.createElement("div");
      box.className = "badge";
      box.setAttribute("role", "button");
      box.setAttribute("tabindex", "0");
      const spinner = this.doc.createElement("span");
      spinner.className = "spinner";
      const text = this.doc.createElement("span");
      text.className = "text";
      const close = this.doc.createElement("button");
      close.className = "close";
      close.type = "button";
      close.textContent = "×";
      close.setAttribute("aria-label", "Remove this label");
      const details = this.doc.createElement("div");
      details.className = "details";
      details.setAttribute("role", "tooltip");
      box.append(spinner, text, close, details);
      shadow.appendChild(box);
      Object.assign(host.style, { position: "fixed", top: "0", left: "0", margin: "0", padding: "0", pointerEvents: "none", display: "none", zIndex: "2147483647" });
      host.setAttribute("data-deepfake-badge", labelId);

      const stop = (event) => {
        event.stopPropagation();
        event.preventDefault();
      };
      for (const type of ["mousedown", "mouseup", "pointerdown", "pointerup", "dblclick", "contextmenu"]) host.addEventListener(type, (event) => event.stopPropagation());
      box.addEventListener("click", (event) => {
        stop(event);
        box.blur(); // a clicked badge must not keep its details open over the page
        if (event.composedPath().includes(close)) this.onDismiss(labelId);
        else if (!event.composedPath().includes(details) || badge.label?.reportUrl) this.onActivate(labelId);
      });
      box.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          stop(event);
          this.onActivate(labelId);
        } else if (event.key === "Escape" || event.key === "Delete") {
          stop(event);
          this.onDismiss(labelId);
        }
      });
      badge = { host, shadow, box, spinner, text, details, element: null, label: null };
      this.badges.set(labelId, badge);
      this.#root().appendChild(host);
      this.#listen(true);
    }
    badge.element = element || null;
    if (label) this.#render(badge, label);
    this.schedule();
    return badge.host;
  }

  #render(badge, label) {
    badge.label = label;
    const { host, box, spinner, text, details } = badge;
    host.setAttribute("data-deepfake-state", label.state);
    if (label.state === "checking") {
      host.removeAttribute("data-deepfake-verdict");
      host.removeAttribute("data-deepfake-probability");
    } else {
      host.setAttribute("data-deepfake-verdict", label.verdict || "error");
      host.setAttribute("data-deepfake-probability", label.probability == null ? "" : String(label.probability));
    }
    if (label.confidence != null) host.setAttribute("data-deepfake-confidence", String(label.confidence));
    else host.removeAttribute("data-deepfake-confidence");
    box.style.setProperty("--colour", label.colour);
    spinner.style.display = label.state === "checking" ? "" : "none";
    text.textContent = label.text;
    const title = this.doc.createElement("strong");
    title.textContent = label.text;
    const list = this.doc.createElement("ul");
    for (const line of label.details || []) {
      const item = this.doc.createElement("li");
      item.textContent = line;
      list.appendChild(item);
    }
    details.replaceChildren(title, list);
    const action = label.reportUrl ? "open the full report" : label.state === "error" ? "try again" : "see progress";
    box.setAttribute("aria-label", `Deepfake check: ${label.text}. Press Enter to ${action}.`);
  }

  label(labelId) {
    return this.badges.get(labelId)?.label || null;
  }

  element(labelId) {
    return this.badges.get(labelId)?.element || null;
  }

  /** Move the badge `labelId` onto another element (the feed re-rendered it). */
  attach(labelId, element) {
    const badge = this.badges.get(labelId);
    if (badge) {
      badge.element = element;
      this.schedule();
    }
  }

  remove(labelId) {
    const badge = this.badges.get(labelId);
    if (!badge) return;
    badge.host.remove();
    this.badges.delete(labelId);
    if (!this.badges.size) this.#listen(false);
  }

  schedule() {
    if (this.doc.hidden) {
      this.positionAll(); // no animation frame would come
      return;
    }
    if (this.frame) return;
    this.frame = this.doc.defaultView.requestAnimationFrame(() => {
      this.frame = 0;
      this.positionAll();
    });
  }

  positionAll() {
    const view = this.doc.defaultView;
    if (this.badges.size) this.#root();
    for (const badge of this.badges.values()) {
      const style = badge.host.style;
      if (!badge.element) {
        Object.assign(style, { display: "block", top: "12px", left: "auto", right: "12px" });
        continue;
      }
      if (!badge.element.isConnected) {
        style.display = "none";
        continue;
      }
      const rect = badge.element.getBoundingClientRect();
      const onScreen = rect.width > 0 && rect.height > 0 && rect.bottom > 0 && rect.right > 0 && rect.top < view.innerHeight && rect.left < view.innerWidth;
      if (!onScreen) {
        style.display = "none";
        continue;
      }
      let top;
      let left;
      if (rect.height < 40) {
        // A link or other small element: just after it, so its text stays readable.
        top = rect.top + rect.height / 2 - 12;
        left = rect.right + 4;
      } else {
        // Top-left corner of the element, kept inside it while it scrolls partly out of view.
        top = Math.max(rect.top + MARGIN, Math.min(MARGIN, rect.bottom - 30));
        left = Math.max(rect.left + MARGIN, Math.min(MARGIN, rect.right - 80));
      }
      Object.assign(style, { display: "block", top: `${Math.round(top)}px`, left: `${Math.round(left)}px`, right: "auto" });
    }
  }
}
