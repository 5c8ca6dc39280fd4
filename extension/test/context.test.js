// Snapshots of the DOM around an element (lib/context.js) on a tiny fake DOM, and finding elements by URL.
import assert from "node:assert/strict";
import { test } from "node:test";

import { collectContext, findLinksByUrl, findMediaByUrl, mediaElementFor, mediaUrlOf } from "../lib/context.js";
import { findPermalink } from "../lib/permalinks.js";
import { fakeDocument, h } from "./fakes.js";

function feed() {
  const video = h("video", { src: "blob:http://127.0.0.1:8123/5f0c", id: "v" });
  const overlay = h("div", { class: "overlay" });
  const post = h(
    "article",
    { id: "post-3" },
    h("header", {}, h("a", { href: "/profile/ana" }, h("span")), h("a", { href: "/post/3", rel: "bookmark" }, h("time", { datetime: "2025-01-01" }))),
    h("div", { class: "media" }, h("div", { class: "player" }, video, overlay)),
  );
  const other = h("article", { id: "post-4" }, h("a", { href: "/post/4", rel: "bookmark" }), h("img", { src: "/files/photo.jpg" }));
  const doc = fakeDocument("http://127.0.0.1:8123/feed.html", h("body", {}, h("main", {}, post, other)));
  return { doc, video, overlay, post, other };
}

test("the snapshot lists ancestors nearest first with the links first met at each level", () => {
  const { doc, video } = feed();
  const elements = [];
  const context = collectContext(video, doc, elements);
  assert.equal(context.pageUrl, "http://127.0.0.1:8123/feed.html");
  assert.deepEqual(
    context.ancestors.map((a) => a.tag),
    ["video", "div", "div", "article", "main", "body"],
  );
  assert.equal(elements.length, context.ancestors.length);
  assert.equal(elements[3].getAttribute("id"), "post-3");
  const article = context.ancestors[3];
  assert.deepEqual(
    article.anchors.map((a) => [a.href, a.rel, a.time]),
    [
      ["http://127.0.0.1:8123/profile/ana", "", false],
      ["http://127.0.0.1:8123/post/3", "bookmark", true],
    ],
  );
  // The neighbouring post's link is listed one level up, after the article: never mistaken for this post's.
  assert.deepEqual(
    context.ancestors[4].anchors.map((a) => a.href),
    ["http://127.0.0.1:8123/post/4"],
  );
  assert.equal(context.media.src, "blob:http://127.0.0.1:8123/5f0c");
});

test("snapshot and permalink rules together find the post of a blob video", () => {
  const { doc, video } = feed();
  assert.equal(findPermalink(collectContext(video, doc)).url, "http://127.0.0.1:8123/post/3");
});

test("a right-click on an overlay over a video is about the video", () => {
  const { video, overlay } = feed();
  assert.equal(mediaElementFor(overlay.parentElement), video);
  assert.equal(mediaElementFor(video), video);
  assert.equal(mediaElementFor(h("div")), null);
});

test("elements are found again by media URL or link", () => {
  const { doc, video, other } = feed();
  assert.deepEqual(findMediaByUrl(doc.documentElement, "blob:http://127.0.0.1:8123/5f0c"), [video]);
  assert.deepEqual(findMediaByUrl(doc.documentElement, "http://127.0.0.1:8123/files/photo.jpg"), [other.children[1]]);
  assert.deepEqual(findMediaByUrl(doc.documentElement, "http://127.0.0.1:8123/none.jpg"), []);
  const links = findLinksByUrl(doc.documentElement, "http://127.0.0.1:8123/post/4#x");
  assert.equal(links.length, 1);
  assert.equal(links[0].getAttribute("href"), "/post/4");
});

test("visible elements are preferred when a URL appears twice", () => {
  const first = h("img", { src: "/a.jpg" });
  const second = h("img", { src: "/a.jpg" });
  const doc = fakeDocument("https://example.com/", h("body", {}, first, second));
  assert.deepEqual(findMediaByUrl(doc.documentElement, "https://example.com/a.jpg", (el) => el === second), [second, first]);
});

test("a video's URL comes from currentSrc, src or its first <source>", () => {
  assert.equal(mediaUrlOf(h("video", { currentSrc: "https://cdn.example/a.mp4" })), "https://cdn.example/a.mp4");
  assert.equal(mediaUrlOf(h("video", {}, h("source", { src: "/b.mp4" }))), "https://example.com/b.mp4");
  assert.equal(mediaUrlOf(h("div", { src: "/c.mp4" })), null);
});
