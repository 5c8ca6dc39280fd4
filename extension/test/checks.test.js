// Whole checks through CheckRunner: labels at each step, back-off, errors, and a service worker restart.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { BackendClient } from "../lib/backend.js";
import { CHECKS_KEY, CheckHistory, CheckRunner, ResultCache, StoredMap } from "../lib/checks.js";
import { FakeStorageArea, fakeFetch, report } from "./fakes.js";

const BASE = "http://127.0.0.1:8000";
const doneBody = (verdict = "fake", id = "a1") => ({ id, status: "done", cached: false, report_url: `${BASE}/analyses/${id}`, report: report(verdict) });
const queued = (jobId) => ({ status: 202, body: { job_id: jobId, status: "queued", status_url: `${BASE}/api/v1/jobs/${jobId}`, progress: { stage: "queued", fraction: 0 } } });

function setup(routes, { area = new FakeStorageArea(), now = () => 1000 } = {}) {
  const { fetchImpl, calls } = fakeFetch(routes);
  const delivered = [];
  const slept = [];
  const finished = [];
  const runner = new CheckRunner({
    area,
    client: () => new BackendClient({ baseUrl: BASE, fetchImpl }),
    deliver: async (destination, label, request) => delivered.push({ to: destination.labelId, state: label.state, text: label.text, request }),
    sleep: async (ms) => slept.push(ms),
    random: () => 0.5,
    now,
    onFinished: async (check, label) => finished.push([check.url, label.verdict]),
  });
  return { runner, area, calls, delivered, slept, finished };
}

describe("a check", () => {
  test("an image: 'Checking…' then the verdict, and nothing left in storage", async () => {
    const { runner, area, delivered, finished } = setup([["/api/v1/analyze", { body: doneBody("real") }]]);
    const label = await runner.start({ url: "https://cdn.example/a.jpg", via: "media", destination: { tabId: 1, frameId: 0, labelId: "L1" } });
    assert.equal(label.verdict, "real");
    assert.deepEqual(
      delivered.map((d) => [d.to, d.state]),
      [
        ["L1", "checking"],
        ["L1", "done"],
      ],
    );
    assert.deepEqual(delivered[1].request, { url: "https://cdn.example/a.jpg", via: "media", manual: true });
    assert.deepEqual(finished, [["https://cdn.example/a.jpg", "real"]]);
    assert.deepEqual((await area.get(CHECKS_KEY))[CHECKS_KEY], {});
  });

  test("a video: long-polled, so the verdict comes with the backend's answer and no wait in between", async () => {
    let now = 1000;
    let polls = 0;
    const { runner, calls, delivered, slept } = setup(
      [
        ["/api/v1/analyze", queued("j1")],
        [
          "/api/v1/jobs/j1",
          () => {
            polls += 1;
            now += polls < 3 ? 20_000 : 1_200; // the backend holds each poll until the job ends or 20 s pass
            if (polls < 3) return { body: { job_id: "j1", status: "running", progress: { stage: "decode", fraction: 0.2 * polls } } };
            return { body: { job_id: "j1", ...doneBody("fake") } };
          },
        ],
      ],
      { now: () => now },
    );
    const label = await runner.start({ url: "https://x.com/a/status/1", via: "permalink", destination: { tabId: 1, frameId: 0, labelId: "L2" } });
    assert.equal(label.text, "Fake · 83% fake");
    assert.deepEqual(slept, []);
    assert.ok(calls.filter((c) => c.url.includes("/jobs/")).every((c) => c.url.endsWith("/api/v1/jobs/j1?wait=20")));
    assert.deepEqual(
      delivered.map((d) => d.text),
      ["Checking…", "Checking…", "Checking… 20%", "Checking… 40%", "Fake · 83% fake"],
    );
  });

  test("a backend that answers polls at once is polled with growing delays, after a first poll right away", async () => {
    let polls = 0;
    const { runner, delivered, slept } = setup([
      ["/api/v1/analyze", queued("j1")],
      [
        "/api/v1/jobs/j1",
        () => {
          polls += 1;
          if (polls < 4) return { body: { job_id: "j1", status: "running", progress: { stage: "decode", fraction: 0.1 * polls } } };
          return { body: { job_id: "j1", ...doneBody("fake") } };
        },
      ],
    ]);
    const label = await runner.start({ url: "https://x.com/a/status/1", via: "permalink", destination: { tabId: 1, frameId: 0, labelId: "L2" } });
    assert.equal(label.text, "Fake · 83% fake");
    assert.deepEqual(slept, [1600, 2560, 4096]);
    assert.deepEqual(
      delivered.map((d) => d.text),
      ["Checking…", "Checking…", "Checking… 10%", "Checking… 20%", "Checking… 30%", "Fake · 83% fake"],
    );
  });

  test("a Retry-After on a successful answer (a rate limiter's window) does not slow polling", async () => {
    let polls = 0;
    const { runner, slept } = setup([
      ["/api/v1/analyze", { ...queued("j1"), headers: { "Retry-After": "59" } }],
      [
        "/api/v1/jobs/j1",
        () => {
          polls += 1;
          if (polls < 2) return { body: { job_id: "j1", status: "running", progress: { stage: "model", fraction: 0.8 } }, headers: { "Retry-After": "58" } };
          return { body: { job_id: "j1", ...doneBody("real") } };
        },
      ],
    ]);
    const label = await runner.start({ url: "https://x.com/a/status/2", destination: { tabId: 1, labelId: "L2b" } });
    assert.equal(label.verdict, "real");
    assert.deepEqual(slept, [1600]);
  });

  test("a refused link ends at once with a readable error", async () => {
    const { runner, delivered } = setup([["/api/v1/analyze", { status: 400, body: { error: { code: "unsafe_url", message: "private address" } } }]]);
    const label = await runner.start({ url: "http://10.0.0.1/x.mp4", destination: { tabId: 1, labelId: "L3" } });
    assert.equal(label.text, "⚠ Private address refused");
    assert.equal(delivered.at(-1).state, "error");
  });

  test("a backend that is down gives 'Checker offline', never an unhandled rejection", async () => {
    const { runner } = setup([]);
    const label = await runner.start({ url: "https://cdn.example/a.jpg", destination: { tabId: 1, labelId: "L4" } });
    assert.equal(label.text, "⚠ Checker offline");
    assert.equal(label.verdict, "error");
  });

  test("passing failures while polling are retried with back-off and Retry-After", async () => {
    let polls = 0;
    const { runner, slept, delivered } = setup([
      ["/api/v1/analyze", queued("j5")],
      [
        "/api/v1/jobs/j5",
        () => {
          polls += 1;
          if (polls === 1) return { status: 503, body: { error: { code: "unavailable", message: "busy" } }, headers: { "Retry-After": "7" } };
          if (polls === 2) return new TypeError("Failed to fetch");
          return { body: { job_id: "j5", ...doneBody("uncertain") } };
        },
      ],
    ]);
    const label = await runner.start({ url: "https://a.example/v.mp4", destination: { tabId: 1, labelId: "L5" } });
    assert.equal(label.verdict, "uncertain");
    assert.deepEqual(slept, [7000, 2560]);
    assert.ok(delivered.some((d) => d.text === "Checking…" && d.state === "checking"));
  });

  test("a poll failing for good ends the check with that error", async () => {
    const { runner } = setup([
      ["/api/v1/analyze", queued("j6")],
      ["/api/v1/jobs/j6", { body: { job_id: "j6", status: "failed", error: { code: "fetch_failed", message: "the site answered 404" }, retryable: true } }],
    ]);
    const label = await runner.start({ url: "https://a.example/v.mp4", destination: { tabId: 1, labelId: "L6" } });
    assert.equal(label.text, "⚠ Couldn't fetch media");
    assert.match(label.details.join(" "), /404/);
  });

  test("a job that never ends times out", async () => {
    let now = 0;
    const { runner } = setup(
      [
        ["/api/v1/analyze", queued("j7")],
        [
          "/api/v1/jobs/j7",
          () => {
            now += 60_000;
            return { body: { job_id: "j7", status: "running", progress: { stage: "fetch", fraction: 0.1 } } };
          },
        ],
      ],
      { now: () => now },
    );
    const label = await runner.start({ url: "https://a.example/v.mp4", destination: { tabId: 1, labelId: "L7" } });
    assert.equal(label.code, "timeout");
  });

  test("two requests for one URL share one backend request and both get the label", async () => {
    let release;
    const gate = new Promise((resolve) => (release = resolve));
    const { runner, calls, delivered } = setup([
      ["/api/v1/analyze", queued("j8")],
      ["/api/v1/jobs/j8", async () => gate.then(() => ({ body: { job_id: "j8", ...doneBody("fake") } }))],
    ]);
    const first = runner.start({ url: "https://a.example/v.mp4", destination: { tabId: 1, labelId: "A" } });
    await new Promise((resolve) => setTimeout(resolve, 10));
    const second = runner.start({ url: "https://a.example/v.mp4", destination: { tabId: 2, labelId: "B" } });
    await new Promise((resolve) => setTimeout(resolve, 10));
    release();
    const [a, b] = await Promise.all([first, second]);
    assert.equal(a.verdict, "fake");
    assert.equal(b.verdict, "fake");
    assert.equal(calls.filter((c) => c.url.endsWith("/analyze")).length, 1);
    assert.deepEqual(
      delivered.filter((d) => d.state === "done").map((d) => d.to).sort(),
      ["A", "B"],
    );
  });
});

test("a check survives the service worker being stopped: a new worker resumes polling from storage", async () => {
  const area = new FakeStorageArea();
  // First worker: submits, gets a job, and is stopped while sleeping before the first poll.
  const first = setup([["/api/v1/analyze", queued("j9")]], { area });
  first.runner.sleep = () => new Promise(() => {}); // never wakes: the worker is gone
  first.runner.start({ url: "https://a.example/v.mp4", via: "media", destination: { tabId: 3, frameId: 0, labelId: "L9" } });
  await new Promise((resolve) => setTimeout(resolve, 20));
  const stored = Object.values((await area.get(CHECKS_KEY))[CHECKS_KEY]);
  assert.equal(stored.length, 1);
  assert.equal(stored[0].phase, "poll");
  assert.equal(stored[0].jobId, "j9");

  // Second worker, same storage: resume() polls the stored job and labels the same badge.
  const second = setup([["/api/v1/jobs/j9", { body: { job_id: "j9", ...doneBody("fake", "a9") } }]], { area });
  const labels = await second.runner.resume();
  assert.equal(labels.length, 1);
  assert.equal(labels[0].verdict, "fake");
  assert.equal(second.delivered.at(-1).to, "L9");
  assert.equal(second.calls.filter((c) => c.url.endsWith("/analyze")).length, 0, "not submitted twice");
  assert.deepEqual((await area.get(CHECKS_KEY))[CHECKS_KEY], {});
  assert.deepEqual(await second.runner.resume(), [], "nothing left to resume");
});

test("a check stopped while submitting is submitted again on resume", async () => {
  const area = new FakeStorageArea();
  await area.set({ [CHECKS_KEY]: { c1: { id: "c1", url: "https://a.example/p.jpg", via: "media", destinations: [{ tabId: 1, labelId: "X" }], phase: "submit", attempt: 0, failures: 0, createdAt: 900, manual: true } } });
  const { runner, delivered } = setup([["/api/v1/analyze", { body: doneBody("real") }]], { area });
  const [label] = await runner.resume();
  assert.equal(label.verdict, "real");
  assert.equal(delivered.at(-1).to, "X");
});

test("a closed tab does not break a check", async () => {
  const { runner } = setup([["/api/v1/analyze", { body: doneBody("real") }]]);
  runner.deliver = async () => {
    throw new Error("Could not establish connection. Receiving end does not exist.");
  };
  const label = await runner.start({ url: "https://cdn.example/a.jpg", destination: { tabId: 99, labelId: "gone" } });
  assert.equal(label.verdict, "real");
});

test("history keeps the newest checks first, bounded", async () => {
  const history = new CheckHistory(new FakeStorageArea(), 3);
  for (let i = 0; i < 5; i += 1) await history.add({ id: `c${i}`, url: `https://a.example/${i}` });
  assert.deepEqual(
    (await history.list()).map((item) => item.id),
    ["c4", "c3", "c2"],
  );
});

test("the result cache forgets old entries", async () => {
  let now = 0;
  const cache = new ResultCache(new FakeStorageArea(), { ttlMs: 1000, now: () => now });
  await cache.put("https://a.example/1", { verdict: "fake" });
  assert.deepEqual(await cache.get("https://a.example/1"), { verdict: "fake" });
  now = 2000;
  assert.equal(await cache.get("https://a.example/1"), null);
});

test("concurrent updates of one stored key are not lost", async () => {
  const map = new StoredMap(new FakeStorageArea(), "k");
  await Promise.all(Array.from({ length: 20 }, (_, i) => map.update((value) => ({ ...value, [i]: true }))));
  assert.equal(Object.keys(await map.read()).length, 20);
});
