// Permalink finding per site, from snapshots shaped like the sites' real markup near a media element.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { canonicalPermalink, findPermalink, siteFor, SITES } from "../lib/permalinks.js";

const node = (tag, { anchors = [], attrs = {}, ...rest } = {}) => ({ tag, attrs, anchors, ...rest });
const link = (href, extra = {}) => ({ href, rel: "", time: false, ...extra });

describe("X / Twitter", () => {
  const tweet = (extraAnchors = []) => [
    node("video"),
    node("div", { attrs: { "data-testid": "videoPlayer" } }),
    node("div", { anchors: [link("https://x.com/nasa/status/1790000000000000001/video/1")] }),
    node("article", {
      attrs: { "data-testid": "tweet" },
      anchors: [link("https://x.com/nasa"), link("https://x.com/nasa/status/1790000000000000001", { time: true }), ...extraAnchors],
    }),
    node("div", { anchors: [link("https://x.com/other/status/1790000000000000999", { time: true })] }),
  ];

  test("a blob video in a tweet gives the tweet's status URL, without /video/1", () => {
    const found = findPermalink({ pageUrl: "https://x.com/home", ancestors: tweet() });
    assert.deepEqual(found, { url: "https://x.com/nasa/status/1790000000000000001", site: "x", from: "link" });
  });

  test("a neighbouring tweet's link outside the article is never taken", () => {
    const ancestors = tweet().map((n) => (n.tag === "article" ? { ...n, anchors: [link("https://x.com/nasa")] } : n));
    ancestors[2] = node("div");
    const found = findPermalink({ pageUrl: "https://x.com/home", ancestors });
    assert.equal(found, null);
  });

  test("twitter.com, mobile and /i/web links are canonicalised to x.com", () => {
    const x = SITES.find((s) => s.name === "x");
    assert.equal(canonicalPermalink("https://mobile.twitter.com/jack/status/20?s=20", x), "https://x.com/jack/status/20");
    assert.equal(canonicalPermalink("https://twitter.com/i/web/status/123", x), "https://x.com/i/web/status/123");
    assert.equal(canonicalPermalink("https://x.com/jack", x), null);
  });

  test("on a tweet's own page without a link nearby, the page URL is the permalink", () => {
    const found = findPermalink({ pageUrl: "https://x.com/nasa/status/42?s=20", ancestors: [node("video"), node("article")] });
    assert.deepEqual(found, { url: "https://x.com/nasa/status/42", site: "x", from: "page" });
  });
});

describe("YouTube", () => {
  test("the main player on a watch page gives the page's video, not an end-screen suggestion", () => {
    const ancestors = [
      node("video", { className: "video-stream html5-main-video" }),
      node("div", { className: "html5-video-container" }),
      node("div", { id: "movie_player", className: "html5-video-player", anchors: [link("https://www.youtube.com/watch?v=AAAAAAAAAAA")] }),
      node("ytd-player"),
    ];
    const found = findPermalink({ pageUrl: "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s&list=PL1", ancestors });
    assert.deepEqual(found, { url: "https://www.youtube.com/watch?v=dQw4w9WgXcQ", site: "youtube", from: "page" });
  });

  test("an inline preview in the home feed gives the item's video", () => {
    const ancestors = [
      node("video"),
      node("div", { id: "inline-player", className: "html5-video-player" }),
      node("ytd-rich-item-renderer", { anchors: [link("https://www.youtube.com/@channel"), link("https://www.youtube.com/watch?v=abcdefghijk&pp=xyz")] }),
    ];
    const found = findPermalink({ pageUrl: "https://www.youtube.com/", ancestors });
    assert.equal(found.url, "https://www.youtube.com/watch?v=abcdefghijk");
  });

  test("shorts, youtu.be, embeds and live links", () => {
    const yt = SITES.find((s) => s.name === "youtube");
    assert.equal(canonicalPermalink("/shorts/abcdefghijk", yt, "https://www.youtube.com/"), "https://www.youtube.com/shorts/abcdefghijk");
    assert.equal(canonicalPermalink("https://youtu.be/abcdefghijk?si=track", yt), "https://www.youtube.com/watch?v=abcdefghijk");
    assert.equal(canonicalPermalink("https://www.youtube-nocookie.com/embed/abcdefghijk", yt), "https://www.youtube.com/watch?v=abcdefghijk");
    assert.equal(canonicalPermalink("https://m.youtube.com/live/abcdefghijk", yt), "https://www.youtube.com/watch?v=abcdefghijk");
    assert.equal(canonicalPermalink("https://www.youtube.com/watch?v=short", yt), null);
    assert.equal(canonicalPermalink("https://www.youtube.com/@channel/videos", yt), null);
  });
});

describe("Instagram", () => {
  test("a reel in the feed article gives the canonical /reel/ URL", () => {
    const ancestors = [
      node("video"),
      node("div"),
      node("article", { anchors: [link("https://www.instagram.com/natgeo/"), link("https://www.instagram.com/natgeo/reel/C1a2B3c4D5e/?igsh=abc", { time: true })] }),
    ];
    assert.equal(findPermalink({ pageUrl: "https://www.instagram.com/", ancestors }).url, "https://www.instagram.com/reel/C1a2B3c4D5e/");
  });

  test("a grid image inside its post link", () => {
    const ancestors = [node("img"), node("div"), node("a", { href: "https://www.instagram.com/p/Cx_yz-123/" })];
    assert.deepEqual(findPermalink({ pageUrl: "https://www.instagram.com/natgeo/", ancestors }), {
      url: "https://www.instagram.com/p/Cx_yz-123/",
      site: "instagram",
      from: "link",
    });
  });
});

describe("TikTok", () => {
  test("a feed item's video link", () => {
    const ancestors = [
      node("video"),
      node("div", { attrs: { "data-e2e": "recommend-list-item-container" }, anchors: [link("https://www.tiktok.com/@user.name/video/7312345678901234567?lang=en")] }),
    ];
    assert.equal(findPermalink({ pageUrl: "https://www.tiktok.com/foryou", ancestors }).url, "https://www.tiktok.com/@user.name/video/7312345678901234567");
  });

  test("the player wrapper's id and the author link make the permalink when there is no video link", () => {
    const ancestors = [
      node("video"),
      node("div", { id: "xgwrapper-0-7312345678901234567" }),
      node("article", { attrs: { "data-e2e": "recommend-list-item-container" }, anchors: [link("https://www.tiktok.com/@someone")] }),
    ];
    assert.deepEqual(findPermalink({ pageUrl: "https://www.tiktok.com/foryou", ancestors }), {
      url: "https://www.tiktok.com/@someone/video/7312345678901234567",
      site: "tiktok",
      from: "id",
    });
  });
});

describe("Facebook", () => {
  test("a video in a feed unit gives its /videos/ link without tracking parameters", () => {
    const ancestors = [
      node("video"),
      node("div", { anchors: [link("https://www.facebook.com/NASA/videos/1234567890/?__cft__[0]=AZX&__tn__=%2CO")] }),
      node("div", { role: "article", attrs: { "aria-posinset": "3" } }),
    ];
    assert.equal(findPermalink({ pageUrl: "https://www.facebook.com/", ancestors }).url, "https://www.facebook.com/NASA/videos/1234567890/");
  });

  test("watch, reel, posts, permalink.php and photo links", () => {
    const fb = SITES.find((s) => s.name === "facebook");
    assert.equal(canonicalPermalink("https://www.facebook.com/watch/?v=123&ref=sharing", fb), "https://www.facebook.com/watch/?v=123");
    assert.equal(canonicalPermalink("https://m.facebook.com/reel/987654321", fb), "https://www.facebook.com/reel/987654321/");
    assert.equal(canonicalPermalink("https://www.facebook.com/someone/posts/pfbid0abcDEF", fb), "https://www.facebook.com/someone/posts/pfbid0abcDEF/");
    assert.equal(
      canonicalPermalink("https://www.facebook.com/permalink.php?story_fbid=111&id=222&__tn__=K", fb),
      "https://www.facebook.com/permalink.php?story_fbid=111&id=222",
    );
    assert.equal(canonicalPermalink("https://www.facebook.com/photo/?fbid=555&set=a.1", fb), "https://www.facebook.com/photo/?fbid=555");
    assert.equal(canonicalPermalink("https://www.facebook.com/NASA", fb), null);
  });
});

describe("Reddit", () => {
  test("shreddit-post's permalink attribute (relative) gives the post", () => {
    const ancestors = [
      node("video"),
      node("shreddit-player"),
      node("shreddit-post", { attrs: { permalink: "/r/videos/comments/1abcde/some_title/", "content-href": "https://v.redd.it/xyz" } }),
    ];
    assert.deepEqual(findPermalink({ pageUrl: "https://www.reddit.com/r/videos/", ancestors }), {
      url: "https://www.reddit.com/r/videos/comments/1abcde/",
      site: "reddit",
      from: "attribute",
    });
  });

  test("old reddit's data-permalink; v.redd.it media links are not posts", () => {
    const ancestors = [node("video"), node("div", { className: "thing link", attrs: { "data-permalink": "/r/pics/comments/9xyz/title/" }, anchors: [link("https://v.redd.it/abc")] })];
    assert.equal(findPermalink({ pageUrl: "https://old.reddit.com/r/pics/", ancestors }).url, "https://www.reddit.com/r/pics/comments/9xyz/");
    const rd = SITES.find((s) => s.name === "reddit");
    assert.equal(canonicalPermalink("https://v.redd.it/abc", rd), null);
    assert.equal(canonicalPermalink("https://redd.it/1abcde", rd), "https://www.reddit.com/comments/1abcde/");
  });
});

describe("other sites", () => {
  test("an article's rel=bookmark link is its permalink", () => {
    const ancestors = [
      node("video"),
      node("div", { anchors: [link("http://127.0.0.1:8123/files/other.html")] }),
      node("article", { anchors: [link("http://127.0.0.1:8123/profile/ana"), link("http://127.0.0.1:8123/post/3#comments", { rel: "bookmark" })] }),
      node("main", { anchors: [link("http://127.0.0.1:8123/post/9", { rel: "bookmark" })] }),
    ];
    assert.deepEqual(findPermalink({ pageUrl: "http://127.0.0.1:8123/feed", ancestors }), { url: "http://127.0.0.1:8123/post/3", site: "generic", from: "link" });
  });

  test("a link around a <time> (Mastodon, blogs) is a permalink too", () => {
    const ancestors = [node("img"), node("div", { role: "article", anchors: [link("https://social.example/@ana/1122", { time: true })] })];
    assert.equal(findPermalink({ pageUrl: "https://social.example/home", ancestors }).url, "https://social.example/@ana/1122");
  });

  test("no post and no marked link: nothing (the caller falls back to the page)", () => {
    const ancestors = [node("video"), node("div", { anchors: [link("https://blog.example/about")] }), node("body")];
    assert.equal(findPermalink({ pageUrl: "https://blog.example/", ancestors }), null);
    assert.equal(findPermalink(null), null);
    assert.equal(findPermalink({ pageUrl: "not a url", ancestors: "junk" }), null);
  });

  test("javascript: and data: links are never permalinks", () => {
    const ancestors = [node("img"), node("article", { anchors: [link("javascript:void(0)", { rel: "bookmark" }), link("data:text/html,x", { time: true })] })];
    assert.equal(findPermalink({ pageUrl: "https://blog.example/", ancestors }), null);
  });
});

test("sites are recognised by host, subdomains included", () => {
  assert.equal(siteFor("https://mobile.twitter.com/home").name, "x");
  assert.equal(siteFor("https://m.youtube.com/").name, "youtube");
  assert.equal(siteFor("https://old.reddit.com/").name, "reddit");
  assert.equal(siteFor("https://web.facebook.com/").name, "facebook");
  assert.equal(siteFor("https://notyoutube.com/").name, "generic");
  assert.equal(siteFor("blob:https://x.com/123").name, "generic");
});
