// What the badge says and how it looks: one label per verdict, per progress stage and per error.
//
// A label is plain data, made in the service worker and rendered by the content script (and the popup):
//   {state: "checking"|"done"|"error", verdict, probability, confidence, text, colour, details: [lines],
//    reportUrl, code, retryable}
// `verdict` is the Report's verdict when done, "error" for errors, null while checking.

export const COLOURS = Object.freeze({
  real: "#1a7f37",
  fake: "#cf222e",
  uncertain: "#9a6700",
  no_face: "#57606a",
  checking: "#0969da",
  error: "#6e2f00",
});

const VERDICT_NAMES = { real: "Real", fake: "Fake", uncertain: "Uncertain", no_face: "No face" };

const STAGE_NAMES = {
  sending: "Sending to the checker",
  queued: "Waiting for a free worker",
  fetch: "Fetching the media",
  decode: "Decoding",
  faces: "Finding faces",
  model: "Analysing faces",
  render: "Writing the report",
  retrying: "Backend busy, retrying",
};

export function percent(value) {
  return `${Math.round(Math.max(0, Math.min(1, Number(value))) * 100)}%`;
}

function seconds(ms) {
  const s = Number(ms) / 1000;
  return s < 10 ? `${s.toFixed(1)} s` : `${Math.round(s)} s`;
}

/** The label for a finished analysis ({report, reportUrl, cached} from lib/backend.js). */
export function labelForResult(result, request = {}) {
  const report = result?.report || {};
  const verdict = VERDICT_NAMES[report.verdict] ? report.verdict : "uncertain";
  const probability = typeof report.fake_probability === "number" ? report.fake_probability : null;
  const confidence = typeof report.confidence === "number" ? report.confidence : null;
  // What the badge says is the fake probability, the same number in every verdict (the server's report and the
  // demo say it the same way, detector/render.py); never a "confidence", which in "uncertain" reads as nonsense.
  const unfamiliar = report.unfamiliar === true && verdict !== "no_face";
  const untrained = report.model?.trained === false;
  const name = untrained ? "Untrained model" : unfamiliar ? "Unfamiliar face" : VERDICT_NAMES[verdict];
  const text = verdict === "no_face" || probability == null ? name : `${name} · ${percent(probability)} fake`;

  const details = [];
  if (verdict === "no_face") details.push("No face was found to analyse.");
  if (probability != null) details.push(`Probability of a fake: ${percent(probability)}`);
  if (untrained) details.push("This model was never trained for this task: its scores mean nothing.");
  else if (unfamiliar) details.push("The face is unlike the faces the model learned from: not called real or fake.");
  else if (verdict === "uncertain") details.push("Too close to call.");
  else if (verdict !== "no_face") details.push("A screening score, not proof: media unlike the model's training data can fool it.");
  const provenance = provenanceLine(report.provenance);
  if (provenance) details.push(provenance);
  const seen = seenBeforeLine(result.matches);
  if (seen) details.push(seen);
  const model = report.model || {};
  if (model.id) {
    const revision = model.revision ? `@${String(model.revision).slice(0, 12)}` : "";
    details.push(`Model: ${model.id}${revision}${model.architecture ? ` (${model.architecture})` : ""}`);
  }
  const media = report.media || {};
  if (media.kind === "video") {
    const duration = typeof media.duration_s === "number" ? ` of ${media.duration_s.toFixed(1)} s of video` : "";
    details.push(`Frames analysed: ${media.frames_analyzed ?? "?"}${duration}`);
  } else if (media.kind === "image") {
    details.push(`Image${media.width && media.height ? ` ${media.width}×${media.height}` : ""}`);
  }
  const total = report.timings_ms?.total;
  if (typeof total === "number") details.push(`Analysis time: ${seconds(total)}${result.cached ? " (cached result)" : ""}`);
  else if (result.cached) details.push("Cached result");
  for (const warning of Array.isArray(report.warnings) ? report.warnings.slice(0, 3) : []) details.push(`Note: ${warning}`);
  if (request.via && request.url) details.push(`Checked ${VIA_NAMES[request.via] || request.via}: ${request.url}`);
  if (result.reportUrl) details.push("Click for the full report.");

  return {
    state: "done",
    verdict: report.verdict in VERDICT_NAMES ? report.verdict : verdict,
    probability,
    confidence,
    text,
    colour: COLOURS[verdict],
    details,
    reportUrl: result.reportUrl || null,
  };
}

const IPTC_AI = new Set(["trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia"]);
const IPTC_CAPTURE = new Set(["digitalCapture", "computationalCapture"]);

function sourceTypeCode(value) {
  return value ? String(value).replace(/\/+$/, "").split("/").at(-1) : null;
}

/** What the file says about itself (the Report's `provenance`, schema 1.1), in the words of
 * detector/provenance.py `describe`: an unverified signature is said to be one, never shown as proof. */
export function provenanceLine(provenance) {
  const claim = provenance?.c2pa;
  if (claim) {
    if (!claim.valid) return "Content Credentials: present but invalid (the file was altered after signing, or the signature is broken)";
    const actions = Array.isArray(claim.actions) ? claim.actions : [];
    const types = new Set([claim.digital_source_type, ...actions.map((a) => a.digital_source_type)].map(sourceTypeCode));
    const aiAgents = actions.filter((a) => IPTC_AI.has(sourceTypeCode(a.digital_source_type))).map((a) => a.software_agent);
    const agents = actions.map((a) => a.software_agent);
    const tool = [...aiAgents, ...agents].find(Boolean) || claim.claim_generator || "an unnamed tool";
    const what = [...types].some((t) => IPTC_AI.has(t))
      ? `made with ${tool}`
      : [...types].some((t) => IPTC_CAPTURE.has(t))
        ? `captured by a camera (${tool})`
        : `made or edited with ${tool}`;
    return `Content Credentials: ${what} (signed by ${claim.signer || "an unknown signer"}; ${claim.trusted ? "verified" : "not verified"})`;
  }
  if (provenance?.iptc_digital_source_type) {
    return `File metadata (unsigned): digital source type ${sourceTypeCode(provenance.iptc_digital_source_type)}`;
  }
  return null;
}

/** "Seen before: 3 times since 2026-12-01, earlier verdict fake", from the answer's `matches` (best first), in the
 * words of server/memory.py `seen_before`; the full report links each earlier analysis the key may see. */
export function seenBeforeLine(matches) {
  if (!Array.isArray(matches) || matches.length === 0) return null;
  const times = matches.reduce((sum, m) => sum + (Number(m.times_seen) || 0), 0);
  const since = matches.map((m) => String(m.first_seen || "")).sort()[0].slice(0, 10);
  return `Seen before: ${times} time${times === 1 ? "" : "s"} since ${since}, earlier verdict ${matches[0].verdict}`;
}

const VIA_NAMES = { media: "the media", link: "the link", permalink: "the post", page: "the page" };

/** The label while a check runs; `progress` is {stage, fraction} from the backend's job. */
export function labelForProgress(progress = {}) {
  const fraction = typeof progress.fraction === "number" ? progress.fraction : 0;
  const stage = progress.stage || "sending";
  const text = fraction > 0 && fraction < 1 ? `Checking… ${percent(fraction)}` : "Checking…";
  return {
    state: "checking",
    verdict: null,
    probability: null,
    confidence: null,
    text,
    colour: COLOURS.checking,
    details: [STAGE_NAMES[stage] || stage],
    reportUrl: null,
  };
}

/** Short text and an explanation per error code (from lib/backend.js BackendError or the backend's JSON). */
const ERRORS = {
  unreachable: ["Checker offline", (e) => `Cannot reach the checker at ${e.backendUrl || "the backend URL"}. Is it running? The address is set in the extension's options.`],
  no_permission: ["No access to checker", (e) => `The extension may not talk to ${e.backendUrl || "the backend"} yet: open the options and save the backend URL to allow it.`],
  timeout: ["Timed out", () => "The checker took too long to answer. Try again later."],
  unauthorized: ["API key needed", () => "The checker needs an API key: add it in the extension's options."],
  forbidden: ["API key refused", () => "The checker refused the API key: check it in the extension's options."],
  no_target: ["Nothing to check", (e) => e.message || "Nothing here has a web address the checker could fetch."],
  unsupported_url_scheme: ["Unsupported link", (e) => e.message || "Only http(s) links can be checked."],
  invalid_url: ["Unsupported link", (e) => e.message || "That address is not a valid link."],
  bad_url: ["Unsupported link", (e) => e.message || "That link cannot be checked."],
  unsafe_url: ["Private address refused", (e) => e.message || "That link points at a private address the checker does not fetch (a private deployment allows them with DEEPFAKE_ALLOW_PRIVATE_URLS=1)."],
  bad_request: ["Unsupported link", (e) => e.message || "The checker did not accept this request."],
  no_media_found: ["No media found", (e) => e.message || "The page has no video or image the checker can take."],
  media_too_long: ["Too long", (e) => e.message || "The video is longer than the checker accepts."],
  media_too_large: ["Too large", (e) => e.message || "The media is larger than the checker accepts."],
  upload_too_large: ["Too large", (e) => e.message || "The media is larger than the checker accepts."],
  unsupported_media: ["Not a video or image", (e) => e.message || "The checker cannot read this kind of file."],
  unsupported_media_type: ["Not a video or image", (e) => e.message || "The checker cannot read this kind of file."],
  corrupt_media: ["Cannot read media", (e) => e.message || "The media looks damaged."],
  empty_media: ["Cannot read media", (e) => e.message || "The media is empty."],
  bad_media: ["Cannot read media", (e) => e.message || "The checker could not read this media."],
  rate_limited: ["Rate limited", (e) => `Too many checks${e.retryAfterS ? `: try again in ${Math.ceil(e.retryAfterS)} s` : ": try again in a minute"}.`],
  budget: ["Waiting for budget", () => "The auto-label request budget for this minute is spent."],
  too_many_jobs: ["Too many checks", (e) => `Several of your links are still being fetched${e.retryAfterS ? `: try again in ${Math.ceil(e.retryAfterS)} s` : ""}.`],
  unavailable: ["Checker busy", (e) => `The checker is busy${e.retryAfterS ? `: try again in ${Math.ceil(e.retryAfterS)} s` : ""}.`],
  queue_full: ["Checker busy", (e) => `The checker is busy${e.retryAfterS ? `: try again in ${Math.ceil(e.retryAfterS)} s` : ""}.`],
  fetch_queue_timeout: ["Checker busy", (e) => `Every download slot of the checker is busy${e.retryAfterS ? `: try again in ${Math.ceil(e.retryAfterS)} s` : ""}.`],
  insufficient_storage: ["Checker full", (e) => `The checker's disk is full; try again later${e.retryAfterS ? ` (in ${Math.ceil(e.retryAfterS)} s)` : ""}. Your media was not the problem.`],
  low_disk_space: ["Checker full", () => "The checker's disk is nearly full; try again later. Your media was not the problem."],
  database_unavailable: ["Checker busy", (e) => `The checker cannot store results just now${e.retryAfterS ? `: try again in ${Math.ceil(e.retryAfterS)} s` : ""}.`],
  not_ready: ["Checker starting", (e) => `The model is still loading${e.retryAfterS ? `: try again in ${Math.ceil(e.retryAfterS)} s` : ""}.`],
  model_unavailable: ["Checker broken", (e) => e.message || "The checker's model could not be loaded."],
  fetch_failed: ["Couldn't fetch media", (e) => e.message || "The checker could not download the media from the site."],
  host_not_found: ["Site lookup failed", (e) => e.message || "Looking up the site's address failed: check the link, or the connection."],
  host_lookup_failed: ["Couldn't fetch media", (e) => e.message || "The site's address could not be looked up; try again."],
  bad_gateway: ["Couldn't fetch media", (e) => e.message || "The checker could not download the media from the site."],
  fetch_timeout: ["Timed out", (e) => e.message || "Downloading the media took too long."],
  gateway_timeout: ["Timed out", (e) => e.message || "Downloading the media took too long."],
  not_found: ["Check lost", () => "The checker no longer knows this check (it may have restarted). Click to try again."],
  bad_response: ["Unexpected answer", (e) => e.message || "The checker's answer could not be understood."],
};

const STATUS_CODES = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  413: "media_too_large",
  415: "unsupported_media",
  422: "bad_media",
  429: "rate_limited",
  502: "fetch_failed",
  503: "unavailable",
  504: "fetch_timeout",
  507: "insufficient_storage",
};

/** The error code to show for an error: its own code when known, else one derived from the HTTP status. */
export function errorCode(error) {
  const code = error?.code;
  if (code && ERRORS[code]) return code;
  const status = Number(error?.status);
  if (STATUS_CODES[status]) return STATUS_CODES[status];
  if (status >= 500) return "server_error";
  return code || "server_error";
}

/** The label for an error: {code, status, message, retryAfterS, backendUrl, retryable}. */
export function labelForError(error = {}) {
  const code = errorCode(error);
  const [text, explain] = ERRORS[code] || ["Checker error", (e) => e.message || "The checker failed; try again later."];
  const details = [explain(error)];
  if (error.message && !details[0].includes(error.message) && code !== "unreachable") details.push(error.message);
  details.push("Click to try again.");
  return {
    state: "error",
    verdict: "error",
    probability: null,
    confidence: null,
    text: `⚠ ${text}`,
    colour: COLOURS.error,
    details,
    reportUrl: null,
    code,
    retryable: error.retryable !== false,
  };
}

/** The short text of the toolbar icon's badge for a label. */
export function actionBadgeFor(label) {
  if (!label) return { text: "", colour: COLOURS.checking };
  if (label.state === "checking") return { text: "…", colour: COLOURS.checking };
  if (label.state === "error") return { text: "!", colour: COLOURS.error };
  const short = { real: "REAL", fake: "FAKE", uncertain: "?", no_face: "—" }[label.verdict] || "?";
  return { text: short, colour: label.colour };
}
