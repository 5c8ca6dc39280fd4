// Settings: defaults, validation, and the host-permission patterns they need.
import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULTS, hostPattern, loadSettings, normalizeBackendUrl, normalizeSettings, parseSites, sitePattern, siteOrigin } from "../lib/settings.js";
import { FakeStorageArea } from "./fakes.js";

test("defaults: the local backend, no key, auto-label off everywhere, 10 checks a minute", async () => {
  assert.deepEqual(await loadSettings(new FakeStorageArea()), {
    backendUrl: "http://127.0.0.1:8000",
    apiKey: "",
    autoLabelSites: [],
    requestsPerMinute: 10,
  });
  assert.deepEqual(normalizeSettings({}), { ...DEFAULTS });
});

test("backend URLs are normalised; anything but http(s) is refused", () => {
  assert.equal(normalizeBackendUrl(" http://127.0.0.1:8000/ "), "http://127.0.0.1:8000");
  assert.equal(normalizeBackendUrl("checker.example.com"), "http://checker.example.com");
  assert.equal(normalizeBackendUrl("https://example.com/deepfake/"), "https://example.com/deepfake");
  for (const bad of ["", "ftp://a", "javascript:alert(1)", "https://user:pw@a.example", null, "http://"]) assert.equal(normalizeBackendUrl(bad), null, String(bad));
});

test("stored values are repaired, not trusted", () => {
  const settings = normalizeSettings({ backendUrl: "file:///etc", apiKey: "  k  ", autoLabelSites: ["youtube.com", "javascript:x", "https://x.com/home"], requestsPerMinute: 9999 });
  assert.equal(settings.backendUrl, "http://127.0.0.1:8000");
  assert.equal(settings.apiKey, "k");
  assert.deepEqual(settings.autoLabelSites, ["https://youtube.com", "https://x.com"]);
  assert.equal(settings.requestsPerMinute, 120);
  assert.equal(normalizeSettings({ requestsPerMinute: 0 }).requestsPerMinute, 1);
});

test("host permission patterns: any port of the backend's host; a site's own origin", () => {
  assert.equal(hostPattern("https://checker.example.com:8443/api"), "https://checker.example.com/*");
  assert.equal(hostPattern("http://[::1]:8000"), "http://[::1]/*");
  assert.equal(sitePattern("https://www.youtube.com"), "https://www.youtube.com/*");
  assert.equal(sitePattern("http://127.0.0.1:8123"), "http://127.0.0.1:8123/*");
  assert.equal(siteOrigin("https://www.youtube.com/watch?v=1"), "https://www.youtube.com");
  assert.equal(siteOrigin("chrome://extensions"), null);
});

test("site lists accept lines, commas and bare hosts, without duplicates", () => {
  assert.deepEqual(parseSites("x.com\nhttps://x.com, https://www.reddit.com/r/videos\n\n  "), ["https://x.com", "https://www.reddit.com"]);
});
