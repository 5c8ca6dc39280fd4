// Badge text, colour and details per verdict, per progress stage and per error.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { actionBadgeFor, COLOURS, errorCode, labelForError, labelForProgress, labelForResult, provenanceLine, seenBeforeLine } from "../lib/labels.js";
import { report } from "./fakes.js";

describe("verdicts", () => {
  test("fake: red, with the fake probability and the caveat", () => {
    const label = labelForResult({ report: report("fake", 0.83), reportUrl: "http://127.0.0.1:8000/analyses/a1", cached: false });
    assert.equal(label.state, "done");
    assert.equal(label.verdict, "fake");
    assert.equal(label.text, "Fake · 83% fake");
    assert.equal(label.colour, COLOURS.fake);
    assert.equal(label.probability, 0.83);
    assert.equal(label.reportUrl, "http://127.0.0.1:8000/analyses/a1");
    assert.ok(label.details.includes("Probability of a fake: 83%"));
    assert.ok(label.details.some((line) => line.startsWith("A screening score, not proof")));
    assert.ok(!label.details.some((line) => line.includes("onfidence")));
    assert.ok(label.details.includes("Model: default@3f2a9c1d4e5b (mobilenet_v3_small_lstm)"));
    assert.ok(label.details.includes("Frames analysed: 16 of 15.8 s of video"));
    assert.ok(label.details.includes("Analysis time: 0.6 s"));
    assert.equal(label.details.at(-1), "Click for the full report.");
  });

  test("real: green, with the same fake probability, never a confident '90%'", () => {
    const label = labelForResult({ report: report("real", 0.1), reportUrl: null, cached: true });
    assert.equal(label.text, "Real · 10% fake");
    assert.equal(label.colour, COLOURS.real);
    assert.ok(label.details.includes("Analysis time: 0.6 s (cached result)"));
    assert.ok(!label.details.includes("Click for the full report."));
  });

  test("uncertain: amber, the fake probability and 'too close to call', no confidence", () => {
    const label = labelForResult({ report: report("uncertain", 0.44, { confidence: 0.56 }) });
    assert.equal(label.text, "Uncertain · 44% fake");
    assert.equal(label.colour, COLOURS.uncertain);
    assert.ok(label.details.includes("Too close to call."));
    assert.ok(!label.details.join(" ").includes("56%"));
  });

  test("an unfamiliar face says so instead of a verdict", () => {
    const label = labelForResult({ report: report("uncertain", 0.02, { unfamiliar: true }) });
    assert.equal(label.text, "Unfamiliar face · 2% fake");
    assert.equal(label.colour, COLOURS.uncertain);
    assert.ok(label.details.some((line) => line.includes("unlike the faces the model learned from")));
  });

  test("an untrained model says so", () => {
    const base = report("real", 0.3);
    const label = labelForResult({ report: { ...base, model: { ...base.model, trained: false } } });
    assert.equal(label.text, "Untrained model · 30% fake");
    assert.ok(label.details.some((line) => line.includes("never trained")));
  });

  test("no face: grey, no percentage, probability null", () => {
    const label = labelForResult({ report: report("no_face", null, { media: { kind: "image", width: 800, height: 600 } }) });
    assert.equal(label.text, "No face");
    assert.equal(label.verdict, "no_face");
    assert.equal(label.probability, null);
    assert.equal(label.colour, COLOURS.no_face);
    assert.ok(label.details.includes("Image 800×600"));
  });

  test("every verdict has its own colour", () => {
    const colours = ["real", "fake", "uncertain", "no_face"].map((v) => labelForResult({ report: report(v, 0.5) }).colour);
    assert.equal(new Set(colours).size, 4);
  });

  test("the checked URL is named in the details", () => {
    const label = labelForResult({ report: report() }, { url: "https://x.com/a/status/1", via: "permalink" });
    assert.ok(label.details.includes("Checked the post: https://x.com/a/status/1"));
  });
});

describe("provenance in the tooltip", () => {
  const IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/";
  const claim = (overrides = {}) => ({
    present: true,
    valid: true,
    trusted: false,
    signer: "OpenAI",
    claim_generator: "ChatGPT 1.0",
    actions: [{ action: "c2pa.created", software_agent: "DALL-E", digital_source_type: `${IPTC}trainedAlgorithmicMedia` }],
    digital_source_type: `${IPTC}trainedAlgorithmicMedia`,
    validation_codes: ["signingCredential.untrusted"],
    ...overrides,
  });

  test("an untrusted AI claim is named as not verified, beside the face verdict", () => {
    const provenance = { c2pa: claim(), iptc_digital_source_type: null, ai_generated: true };
    const label = labelForResult({ report: report("real", 0.1, { provenance }) });
    assert.equal(label.text, "Real · 10% fake");
    assert.ok(label.details.includes("Content Credentials: made with DALL-E (signed by OpenAI; not verified)"));
  });

  test("a trusted one is verified; a camera claim says so; an invalid one is never shown as a claim", () => {
    assert.equal(provenanceLine({ c2pa: claim({ trusted: true }) }), "Content Credentials: made with DALL-E (signed by OpenAI; verified)");
    const camera = claim({ actions: [{ action: "c2pa.created", software_agent: null, digital_source_type: `${IPTC}digitalCapture` }], digital_source_type: `${IPTC}digitalCapture` });
    assert.equal(provenanceLine({ c2pa: camera }), "Content Credentials: captured by a camera (ChatGPT 1.0) (signed by OpenAI; not verified)");
    assert.match(provenanceLine({ c2pa: claim({ valid: false }) }), /present but invalid/);
  });

  test("unsigned XMP is named as unsigned; nothing said, no line", () => {
    assert.equal(provenanceLine({ c2pa: null, iptc_digital_source_type: `${IPTC}trainedAlgorithmicMedia` }), "File metadata (unsigned): digital source type trainedAlgorithmicMedia");
    assert.equal(provenanceLine({ c2pa: null, iptc_digital_source_type: null }), null);
    assert.equal(provenanceLine(undefined), null);
    assert.ok(!labelForResult({ report: report() }).details.some((line) => line.includes("Content Credentials")));
  });
});

test("seen before: how often, since when, and the earlier verdict, from the answer's matches", () => {
  const matches = [
    { analysis_id: "a1", verdict: "fake", fake_probability: 0.9, similarity: 0.98, first_seen: "2026-12-02T10:00:00.000Z", times_seen: 1 },
    { analysis_id: null, verdict: "fake", fake_probability: null, similarity: 0.9, first_seen: "2026-11-30T08:00:00.000Z", times_seen: 2 },
  ];
  const label = labelForResult({ report: report("real", 0.2), reportUrl: "http://127.0.0.1:8000/analyses/b2", matches });
  assert.ok(label.details.includes("Seen before: 3 times since 2026-11-30, earlier verdict fake"));
  assert.equal(seenBeforeLine([{ ...matches[0] }]), "Seen before: 1 time since 2026-12-02, earlier verdict fake");
  assert.equal(seenBeforeLine([]), null);
  assert.ok(!labelForResult({ report: report() }).details.some((line) => line.startsWith("Seen before")));
});

test("progress: 'Checking…' with the job's fraction and stage", () => {
  assert.equal(labelForProgress().text, "Checking…");
  const label = labelForProgress({ stage: "faces", fraction: 0.6 });
  assert.equal(label.text, "Checking… 60%");
  assert.deepEqual(label.details, ["Finding faces"]);
  assert.equal(label.state, "checking");
  assert.equal(label.verdict, null);
  assert.equal(label.colour, COLOURS.checking);
});

describe("errors", () => {
  const cases = [
    [{ code: "unreachable", backendUrl: "http://127.0.0.1:8000" }, "⚠ Checker offline", /127\.0\.0\.1:8000/],
    [{ code: "unsupported_url_scheme", status: 400, message: "blob: URLs cannot be fetched" }, "⚠ Unsupported link", /blob:/],
    [{ code: "unsafe_url", status: 400, message: "private address" }, "⚠ Private address refused", /private/],
    [{ code: "unsafe_url", status: 400 }, "⚠ Private address refused", /DEEPFAKE_ALLOW_PRIVATE_URLS/],
    [{ code: "media_too_long", status: 413, message: "the video is 900 s long; the limit is 600 s" }, "⚠ Too long", /600 s/],
    [{ code: "rate_limited", status: 429, retryAfterS: 12 }, "⚠ Rate limited", /try again in 12 s/],
    [{ code: "unavailable", status: 503, retryAfterS: 10 }, "⚠ Checker busy", /10 s/],
    [{ code: "queue_full", status: 503, retryAfterS: 10 }, "⚠ Checker busy", /10 s/],
    [{ code: "too_many_jobs", status: 429, retryAfterS: 10 }, "⚠ Too many checks", /still being fetched: try again in 10 s/],
    [{ code: "fetch_queue_timeout", status: 503, retryAfterS: 7 }, "⚠ Checker busy", /download slot.*7 s/],
    [{ code: "insufficient_storage", status: 507 }, "⚠ Checker full", /disk is full.*not the problem/],
    [{ code: "http_507", status: 507 }, "⚠ Checker full", /disk is full/],
    [{ code: "host_not_found", status: 400, message: "looking up the host no-such.example failed" }, "⚠ Site lookup failed", /looking up/],
    [{ code: "unauthorized", status: 401 }, "⚠ API key needed", /options/],
    [{ code: "fetch_failed", status: 502, message: "the site answered 404" }, "⚠ Couldn't fetch media", /404/],
    [{ code: "no_media_found", status: 422 }, "⚠ No media found", /no video or image/],
    [{ code: "no_permission", backendUrl: "https://checker.example" }, "⚠ No access to checker", /checker\.example/],
    [{ code: "weird_new_code", status: 500, message: "boom" }, "⚠ Checker error", /boom/],
  ];
  for (const [error, text, detail] of cases) {
    test(`${error.code} → ${text}`, () => {
      const label = labelForError(error);
      assert.equal(label.text, text);
      assert.equal(label.verdict, "error");
      assert.equal(label.state, "error");
      assert.equal(label.probability, null);
      assert.equal(label.colour, COLOURS.error);
      assert.match(label.details.join(" "), detail);
    });
  }

  test("an unknown code is named after its HTTP status", () => {
    assert.equal(errorCode({ code: "http_413", status: 413 }), "media_too_large");
    assert.equal(errorCode({ code: "http_429", status: 429 }), "rate_limited");
    assert.equal(errorCode({ code: "http_504", status: 504 }), "fetch_timeout");
    assert.equal(errorCode({}), "server_error");
  });

  test("errors that cannot succeed again are not offered for retry", () => {
    assert.equal(labelForError({ code: "no_target", retryable: false }).retryable, false);
    assert.equal(labelForError({ code: "unreachable" }).retryable, true);
  });
});

test("the toolbar badge mirrors the label", () => {
  assert.deepEqual(actionBadgeFor(labelForProgress()), { text: "…", colour: COLOURS.checking });
  assert.equal(actionBadgeFor(labelForResult({ report: report("fake") })).text, "FAKE");
  assert.equal(actionBadgeFor(labelForError({ code: "unreachable" })).text, "!");
  assert.equal(actionBadgeFor(null).text, "");
});
