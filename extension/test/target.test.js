// Which URL a check sends: the media's own http(s) URL, else the post's permalink, else the page; never blob:.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { chooseAutoTarget, chooseTarget, isHttpUrl, MENU_IDS } from "../lib/target.js";

const tweet = {
  pageUrl: "https://x.com/home",
  ancestors: [
    { tag: "video", attrs: {}, anchors: [] },
    { tag: "article", attrs: { "data-testid": "tweet" }, anchors: [{ href: "https://x.com/nasa/status/17", time: true }] },
  ],
};

describe("media", () => {
  test("an http(s) image or video is sent as it is", () => {
    const info = { menuItemId: MENU_IDS.media, srcUrl: "https://pbs.twimg.com/media/abc.jpg?name=large", pageUrl: "https://x.com/home", mediaType: "image" };
    assert.deepEqual(chooseTarget(info, tweet), { url: "https://pbs.twimg.com/media/abc.jpg?name=large", via: "media" });
  });

  test("a blob: video sends the post's permalink found near it", () => {
    const info = { menuItemId: MENU_IDS.media, srcUrl: "blob:https://x.com/4f1c-88", pageUrl: "https://x.com/home", mediaType: "video" };
    assert.deepEqual(chooseTarget(info, tweet), { url: "https://x.com/nasa/status/17", via: "permalink", site: "x" });
  });

  test("a blob: video without a permalink sends the page URL, never the blob", () => {
    const info = { menuItemId: MENU_IDS.media, srcUrl: "blob:https://news.example/1", pageUrl: "https://news.example/story#top", mediaType: "video" };
    const target = chooseTarget(info, { pageUrl: "https://news.example/story", ancestors: [] });
    assert.deepEqual(target, { url: "https://news.example/story", via: "page" });
  });

  test("data: images and MediaStream videos (no srcUrl) fall back the same way", () => {
    for (const srcUrl of ["data:image/png;base64,iVBORw0KGgo=", undefined, "", "filesystem:https://a/b"]) {
      const target = chooseTarget({ menuItemId: MENU_IDS.media, srcUrl, pageUrl: "https://x.com/home" }, tweet);
      assert.equal(target.url, "https://x.com/nasa/status/17");
    }
  });

  test("in a frame, the frame's URL is the page", () => {
    const info = { menuItemId: MENU_IDS.media, srcUrl: "blob:https://www.youtube.com/1", pageUrl: "https://blog.example/", frameUrl: "https://www.youtube.com/embed/abcdefghijk" };
    assert.deepEqual(chooseTarget(info, null), { url: "https://www.youtube.com/watch?v=abcdefghijk", via: "permalink", site: "youtube" });
  });

  test("on a file:// page with a blob video there is nothing to send", () => {
    const target = chooseTarget({ menuItemId: MENU_IDS.media, srcUrl: "blob:null/1", pageUrl: "file:///home/me/page.html" }, null);
    assert.equal(target.error, "no_target");
    assert.equal(target.url, undefined);
  });
});

describe("links and pages", () => {
  test("an http(s) link is sent without its fragment", () => {
    const target = chooseTarget({ menuItemId: MENU_IDS.link, linkUrl: "https://www.youtube.com/watch?v=abcdefghijk#t=3", pageUrl: "https://blog.example/" });
    assert.deepEqual(target, { url: "https://www.youtube.com/watch?v=abcdefghijk", via: "link" });
  });

  test("a javascript: or mailto: link falls back to the page", () => {
    for (const linkUrl of ["javascript:void(0)", "mailto:a@b.c", "blob:https://x.com/1"]) {
      assert.deepEqual(chooseTarget({ menuItemId: MENU_IDS.link, linkUrl, pageUrl: "https://blog.example/p" }), { url: "https://blog.example/p", via: "page" });
    }
  });

  test("the page item on a post checks the post; elsewhere the page (canonical on known sites)", () => {
    assert.deepEqual(chooseTarget({ menuItemId: MENU_IDS.page, pageUrl: "https://x.com/home" }, tweet), { url: "https://x.com/nasa/status/17", via: "permalink", site: "x" });
    assert.deepEqual(chooseTarget({ menuItemId: MENU_IDS.page, pageUrl: "https://www.youtube.com/watch?v=abcdefghijk&t=1" }, null), {
      url: "https://www.youtube.com/watch?v=abcdefghijk",
      via: "page",
      site: "youtube",
    });
    assert.deepEqual(chooseTarget({ menuItemId: MENU_IDS.page, pageUrl: "https://blog.example/a#b" }, null), { url: "https://blog.example/a", via: "page" });
  });

  test("unknown menu items and chrome:// pages are refused", () => {
    assert.equal(chooseTarget({ menuItemId: "other", pageUrl: "https://a.example/" }).error, "no_target");
    assert.equal(chooseTarget({ menuItemId: MENU_IDS.page, pageUrl: "chrome://extensions/" }).error, "no_target");
  });
});

test("auto-label sends media URLs or permalinks, never the feed page", () => {
  assert.deepEqual(chooseAutoTarget("https://cdn.example/a.jpg", null), { url: "https://cdn.example/a.jpg", via: "media" });
  assert.deepEqual(chooseAutoTarget("blob:https://x.com/1", tweet), { url: "https://x.com/nasa/status/17", via: "permalink", site: "x" });
  assert.equal(chooseAutoTarget("blob:https://x.com/1", { pageUrl: "https://x.com/home", ancestors: [] }), null);
  assert.equal(chooseAutoTarget("blob:https://x.com/1", { pageUrl: "https://x.com/nasa/status/17", ancestors: [] }), null);
});

test("isHttpUrl accepts only absolute http(s) URLs", () => {
  assert.ok(isHttpUrl("http://127.0.0.1:8000/x"));
  assert.ok(isHttpUrl("https://example.com"));
  for (const value of ["blob:https://a/1", "data:,x", "/relative", "ftp://a/b", "", null, 42, "javascript:alert(1)"]) assert.equal(isHttpUrl(value), false, String(value));
});
