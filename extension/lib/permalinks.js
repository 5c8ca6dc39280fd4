// Finds the permalink of the post around a media element, per site, from a plain snapshot of the DOM near it.
//
// Most social sites play videos from blob: URLs (MediaSource), which the backend cannot fetch; the post's own
// link can be fetched (yt-dlp knows these sites). The snapshot is made by lib/context.js in the page and is plain
// data, so every rule here is testable in Node:
//   {pageUrl, canonicalUrl, ancestors: [{tag, id, role, className, attrs: {...}, href, anchors: [{href, rel, time}]}]}
// ancestors[0] is the element itself, then its parent, and so on; `anchors` lists the links first met at that level.

/** The canonical form of a permalink on a known site, or null when `href` is not one. */
function parse(href, base) {
  try {
    return new URL(href, base);
  } catch {
    return null;
  }
}

function hostIs(url, ...domains) {
  const host = url.hostname.toLowerCase();
  return domains.some((domain) => host === domain || host.endsWith(`.${domain}`));
}

const YOUTUBE_ID = /^[A-Za-z0-9_-]{11}$/;

/** Per-site rules: which hosts, how to turn a link into the post's canonical URL, which ancestors are posts. */
export const SITES = [
  {
    name: "x",
    hosts: ["x.com", "twitter.com"],
    canonical(url) {
      const web = url.pathname.match(/^\/i\/web\/status\/(\d+)/);
      if (web) return `https://x.com/i/web/status/${web[1]}`;
      const match = url.pathname.match(/^\/([A-Za-z0-9_]{1,15})\/status(?:es)?\/(\d+)/);
      return match ? `https://x.com/${match[1]}/status/${match[2]}` : null;
    },
    isPost: (node) => node.tag === "article" || node.attrs["data-testid"] === "tweet",
  },
  {
    name: "youtube",
    hosts: ["youtube.com", "youtu.be", "youtube-nocookie.com"],
    canonical(url) {
      if (hostIs(url, "youtu.be")) {
        const id = url.pathname.slice(1).split("/")[0];
        return YOUTUBE_ID.test(id) ? `https://www.youtube.com/watch?v=${id}` : null;
      }
      const v = url.searchParams.get("v");
      if (url.pathname === "/watch" && v && YOUTUBE_ID.test(v)) return `https://www.youtube.com/watch?v=${v}`;
      const match = url.pathname.match(/^\/(shorts|live|embed|v)\/([A-Za-z0-9_-]{11})(?:[/?#]|$)/);
      if (!match) return null;
      return match[1] === "shorts" ? `https://www.youtube.com/shorts/${match[2]}` : `https://www.youtube.com/watch?v=${match[2]}`;
    },
    isPost: (node) =>
      [
        "ytd-rich-item-renderer",
        "ytd-video-renderer",
        "ytd-compact-video-renderer",
        "ytd-grid-video-renderer",
        "ytd-reel-item-renderer",
        "ytd-playlist-video-renderer",
        "ytd-video-preview",
        "yt-lockup-view-model",
        "ytm-shorts-lockup-view-model",
        "ytm-video-with-context-renderer",
      ].includes(node.tag),
    // The main player (watch page, shorts, embeds) plays the page's own video, but end screens inside it link to
    // other videos: the page URL is the right answer there, not the nearest link.
    isPlayer: (node) =>
      node.id === "movie_player" || node.tag === "ytd-player" || node.tag === "ytd-reel-video-renderer" || /\bhtml5-video-player\b/.test(node.className),
  },
  {
    name: "instagram",
    hosts: ["instagram.com"],
    canonical(url) {
      const match = url.pathname.match(/^\/(?:[A-Za-z0-9._]+\/)?(p|reels?|tv)\/([A-Za-z0-9_-]+)/);
      if (!match) return null;
      const kind = match[1] === "reels" ? "reel" : match[1];
      return `https://www.instagram.com/${kind}/${match[2]}/`;
    },
    isPost: (node) => node.tag === "article",
  },
  {
    name: "tiktok",
    hosts: ["tiktok.com"],
    canonical(url) {
      if (hostIs(url, "vm.tiktok.com", "vt.tiktok.com")) {
        const code = url.pathname.split("/")[1];
        return code ? `https://${url.hostname.toLowerCase()}/${code}/` : null;
      }
      const match = url.pathname.match(/^\/@([\w.-]+)\/(video|photo)\/(\d+)/);
      if (match) return `https://www.tiktok.com/@${match[1]}/${match[2]}/${match[3]}`;
      const embed = url.pathname.match(/^\/embed(?:\/v2)?\/(\d+)/);
      return embed ? `https://www.tiktok.com/embed/v2/${embed[1]}` : null;
    },
    isPost: (node) =>
      node.tag === "article" || ["recommend-list-item-container", "user-post-item", "feed-video"].includes(node.attrs["data-e2e"]),
    // TikTok's player wrapper is named after the video (`xgwrapper-0-<id>`) and its feed often has no link to the
    // video itself, only to the author: together they make the permalink (yt-dlp also accepts an empty author).
    fromIds(ancestors, base) {
      for (const node of ancestors) {
        const match = (node.id || "").match(/^xgwrapper-\d+-(\d{10,25})$/);
        if (!match) continue;
        let author = "";
        for (const other of ancestors) {
          for (const anchor of other.anchors || []) {
            const url = parse(anchor.href, base);
            const user = url && hostIs(url, "tiktok.com") && url.pathname.match(/^\/@([\w.-]+)\/?$/);
            if (user) {
              author = user[1];
              break;
            }
          }
          if (author) break;
        }
        return `https://www.tiktok.com/@${author}/video/${match[1]}`;
      }
      return null;
    },
  },
  {
    name: "facebook",
    hosts: ["facebook.com", "fb.watch", "fb.com"],
    canonical(url) {
      if (hostIs(url, "fb.watch")) {
        const code = url.pathname.split("/")[1];
        return code ? `https://fb.watch/${code}/` : null;
      }
      const path = url.pathname.replace(/\/+$/, "");
      const params = url.searchParams;
      const keep = (...names) => {
        const kept = new URLSearchParams();
        for (const name of names) if (params.get(name)) kept.set(name, params.get(name));
        return kept.toString();
      };
      if (/^\/watch$/.test(path) && /^\d+$/.test(params.get("v") || "")) return `https://www.facebook.com/watch/?v=${params.get("v")}`;
      if (/^\/(permalink|story)\.php$/.test(path) && params.get("story_fbid")) return `https://www.facebook.com${path}?${keep("story_fbid", "id")}`;
      if (/^\/photo(\.php)?$/.test(path) && /^\d+$/.test(params.get("fbid") || "")) return `https://www.facebook.com/photo/?fbid=${params.get("fbid")}`;
      const patterns = [
        /^\/reel\/\d+$/,
        /^\/[^/]+\/videos\/(?:[^/]+\/)?\d+$/,
        /^\/videos\/\d+$/,
        /^\/[^/]+\/posts\/[\w-]+$/,
        /^\/groups\/[^/]+\/(?:posts|permalink)\/\d+$/,
        /^\/share\/[rvp]\/\w+$/,
      ];
      return patterns.some((pattern) => pattern.test(path)) ? `https://www.facebook.com${path}/` : null;
    },
    isPost: (node) =>
      node.role === "article" || "aria-posinset" in node.attrs || (node.attrs["data-pagelet"] || "").startsWith("FeedUnit"),
  },
  {
    name: "reddit",
    hosts: ["reddit.com", "redd.it"],
    canonical(url) {
      if (hostIs(url, "v.redd.it", "i.redd.it", "preview.redd.it")) return null; // media hosts, not posts
      if (hostIs(url, "redd.it")) {
        const id = url.pathname.split("/")[1];
        return /^[a-z0-9]+$/i.test(id || "") ? `https://www.reddit.com/comments/${id}/` : null;
      }
      const match = url.pathname.match(/^\/((?:r|u|user)\/[\w-]+\/)?comments\/([a-z0-9]+)/i);
      return match ? `https://www.reddit.com/${match[1] || ""}comments/${match[2]}/` : null;
    },
    isPost: (node) =>
      node.tag === "shreddit-post" || node.attrs["data-testid"] === "post-container" || /\bthing\b/.test(node.className) || node.tag === "article",
  },
];

/** Any other site: the post is an <article> (or role=article); its permalink is marked the way microformats and
 * blogs do it (rel=bookmark, a link around a <time>) or named by a permalink attribute. */
export const GENERIC = {
  name: "generic",
  hosts: [],
  canonical: () => null,
  isPost: (node) => node.tag === "article" || node.role === "article",
};

const PERMALINK_ATTRIBUTES = ["permalink", "data-permalink"];

/** The rules for the site a page belongs to (GENERIC for unknown sites). */
export function siteFor(pageUrl) {
  const url = parse(pageUrl);
  if (!url) return GENERIC;
  return SITES.find((site) => hostIs(url, ...site.hosts)) || GENERIC;
}

/** The canonical permalink for `href` on `site`, or null. */
export function canonicalPermalink(href, site, base) {
  const url = parse(href, base);
  if (!url || (url.protocol !== "https:" && url.protocol !== "http:")) return null;
  if (site === GENERIC) return null;
  if (!hostIs(url, ...site.hosts)) return null;
  return site.canonical(url);
}

function genericAnchor(anchor, base) {
  const url = parse(anchor.href, base);
  if (!url || (url.protocol !== "https:" && url.protocol !== "http:")) return null;
  const rel = (anchor.rel || "").toLowerCase().split(/\s+/);
  if (rel.includes("bookmark") || anchor.time) {
    url.hash = "";
    return url.href;
  }
  return null;
}

/**
 * The permalink of the post around the element the snapshot describes: {url, site, from} or null.
 * `from` says how it was found: "attribute", "link", "id" or "page".
 * Searches from the element outwards and stops at the post container, so a neighbouring post's link is never taken.
 */
export function findPermalink(context) {
  if (!context) return null;
  const pageUrl = context.pageUrl || "";
  const site = siteFor(pageUrl);
  const ancestors = Array.isArray(context.ancestors) ? context.ancestors.map(normalizeNode) : [];
  const pagePermalink = site === GENERIC ? null : site.canonical(parse(pageUrl) || new URL("about:blank"));

  if (site.isPlayer && pagePermalink && ancestors.some((node) => site.isPlayer(node))) {
    return { url: pagePermalink, site: site.name, from: "page" };
  }

  const postIndex = ancestors.findIndex((node) => site.isPost(node));
  // Without a recognisable post, look only close to the element (the site may have changed its markup).
  const last = postIndex >= 0 ? postIndex : Math.min(ancestors.length - 1, site === GENERIC ? 2 : 5);
  const nearby = ancestors.slice(0, last + 1);

  for (const node of nearby) {
    for (const name of PERMALINK_ATTRIBUTES) {
      const value = node.attrs[name];
      if (!value) continue;
      const found = site === GENERIC ? genericAnchor({ href: value, rel: "bookmark" }, pageUrl) : canonicalPermalink(value, site, pageUrl);
      if (found) return { url: found, site: site.name, from: "attribute" };
    }
    if (node.tag === "a" && node.href) {
      const found = site === GENERIC ? null : canonicalPermalink(node.href, site, pageUrl);
      if (found) return { url: found, site: site.name, from: "link" };
    }
    // Links around a <time> (the post's date) are the permalink on most sites: try them first.
    const anchors = [...node.anchors].sort((a, b) => Number(Boolean(b.time)) - Number(Boolean(a.time)));
    for (const anchor of anchors) {
      const found = site === GENERIC ? genericAnchor(anchor, pageUrl) : canonicalPermalink(anchor.href, site, pageUrl);
      if (found) return { url: found, site: site.name, from: "link" };
    }
  }

  if (site.fromIds) {
    const found = site.fromIds(nearby, pageUrl);
    if (found) return { url: found, site: site.name, from: "id" };
  }
  if (pagePermalink) return { url: pagePermalink, site: site.name, from: "page" };
  return null;
}

function normalizeNode(node) {
  return {
    tag: String(node?.tag || "").toLowerCase(),
    id: String(node?.id || ""),
    role: String(node?.role || ""),
    className: String(node?.className || ""),
    attrs: node?.attrs && typeof node.attrs === "object" ? node.attrs : {},
    href: node?.href || "",
    anchors: Array.isArray(node?.anchors) ? node.anchors : [],
  };
}
