// The extension as the browser and the Chrome Web Store see it: manifest, permissions, icons, files, CSP.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { MENU_IDS } from "../lib/target.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const manifest = JSON.parse(readFileSync(join(ROOT, "manifest.json"), "utf8"));
const read = (path) => readFileSync(join(ROOT, path), "utf8");

function files(dir = ROOT) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (["test", "tools", "node_modules"].includes(name)) return [];
    return statSync(path).isDirectory() ? files(path) : [relative(ROOT, path)];
  });
}

test("Manifest V3 with a module service worker", () => {
  assert.equal(manifest.manifest_version, 3);
  assert.match(manifest.version, /^\d+(\.\d+){0,3}$/);
  assert.deepEqual(manifest.background, { service_worker: "background.js", type: "module" });
  assert.ok(manifest.description.length <= 132, "the store limits descriptions to 132 characters");
});

test("minimal permissions: only what is used, hosts beyond the local backend optional", () => {
  assert.deepEqual([...manifest.permissions].sort(), ["activeTab", "alarms", "contextMenus", "scripting", "storage"]);
  assert.deepEqual(manifest.host_permissions, ["http://127.0.0.1/*", "http://localhost/*"]);
  assert.deepEqual(manifest.optional_host_permissions, ["https://*/*", "http://*/*"]);
  assert.equal(manifest.content_scripts, undefined, "no content script on every page: injected on demand");
  const sources = files().filter((f) => f.endsWith(".js")).map(read).join("\n");
  for (const permission of manifest.permissions.filter((p) => p !== "activeTab")) {
    const api = { contextMenus: "chrome.contextMenus", storage: "chrome.storage", scripting: "chrome.scripting", alarms: "chrome.alarms" }[permission];
    assert.ok(sources.includes(api), `${permission} is declared but ${api} is never used`);
  }
});

test("icons at the store sizes are real PNGs of those sizes", () => {
  for (const size of [16, 32, 48, 128]) {
    const path = manifest.icons[String(size)];
    const png = readFileSync(join(ROOT, path));
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${path} is not a PNG`);
    assert.equal(png.readUInt32BE(16), size, `${path} width`);
    assert.equal(png.readUInt32BE(20), size, `${path} height`);
  }
});

test("every file the manifest and pages name exists", () => {
  const named = [
    manifest.background.service_worker,
    manifest.action.default_popup,
    manifest.options_ui.page,
    ...Object.values(manifest.icons),
    ...Object.values(manifest.action.default_icon),
    ...manifest.web_accessible_resources.flatMap((entry) => entry.resources),
    "content/loader.js",
  ];
  for (const path of named) assert.ok(statSync(join(ROOT, path)).isFile(), path);
  for (const page of ["popup/popup.html", "options/options.html"]) {
    for (const [, ref] of read(page).matchAll(/(?:src|href)="([^"#:]+)"/g)) {
      assert.ok(statSync(join(ROOT, dirname(page), ref)).isFile(), `${page} names ${ref}`);
    }
  }
});

test("the content script's modules, and only they, are web-accessible", () => {
  const resources = manifest.web_accessible_resources.flatMap((entry) => entry.resources).sort();
  const imported = new Set(["content/main.js"]);
  for (const path of [...imported]) {
    for (const [, ref] of read(path).matchAll(/from "(\.[^"]+)"/g)) {
      const target = relative(ROOT, join(ROOT, dirname(path), ref));
      if (!imported.has(target)) {
        imported.add(target);
        for (const [, deeper] of read(target).matchAll(/from "(\.[^"]+)"/g)) imported.add(relative(ROOT, join(ROOT, dirname(target), deeper)));
      }
    }
  }
  assert.deepEqual(resources, [...imported].sort());
});

test("CSP-clean: no inline scripts or handlers, no eval, no remote code", () => {
  assert.equal(manifest.content_security_policy.extension_pages, "script-src 'self'; object-src 'self'");
  for (const page of files().filter((f) => f.endsWith(".html"))) {
    const html = read(page);
    for (const [tag] of html.matchAll(/<script\b[^>]*>/g)) assert.match(tag, /\bsrc="[^":]+"/, `${page}: inline or remote <script>`);
    assert.doesNotMatch(html, /<script\b[^>]*>[^<\s]/, `${page}: inline script body`);
    assert.doesNotMatch(html, /\son[a-z]+\s*=/i, `${page}: inline event handler`);
    assert.doesNotMatch(html, /(?:src|href)="https?:/, `${page}: remote resource`);
  }
  for (const path of files().filter((f) => f.endsWith(".js"))) {
    const js = read(path);
    assert.doesNotMatch(js, /\beval\s*\(|new\s+Function\s*\(|\.innerHTML\s*=|document\.write/, `${path}: dynamic code or HTML`);
    assert.doesNotMatch(js, /import\s*\(\s*["'`]https?:|importScripts\s*\(/, `${path}: remote code`);
  }
});

test("the three context-menu items are created with their ids and contexts", () => {
  const background = read("background.js");
  assert.deepEqual(MENU_IDS, { media: "deepfake-check-media", link: "deepfake-check-link", page: "deepfake-check-page" });
  assert.match(background, /id: MENU_IDS\.media, title: MENU_TITLE, contexts: \["image", "video"\]/);
  assert.match(background, /id: MENU_IDS\.link,[^\n]*contexts: \["link"\]/);
  assert.match(background, /id: MENU_IDS\.page,[^\n]*contexts: \["page", "frame"\]/);
  assert.match(background, /const MENU_TITLE = "Check for deepfake"/);
});
