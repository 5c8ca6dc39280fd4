// The backend client against the response shapes of server/api.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import { BackendClient, BackendError } from "../lib/backend.js";
import { fakeFetch, report } from "./fakes.js";

const BASE = "http://127.0.0.1:8000";
const done = (verdict = "fake") => ({ id: "a1", status: "done", cached: false, report_url: `${BASE}/analyses/a1`, report: report(verdict) });

test("an image answers 200 with its report", async () => {
  const { fetchImpl, calls } = fakeFetch([["/api/v1/analyze", { status: 200, body: done("real") }]]);
  const client = new BackendClient({ baseUrl: `${BASE}/`, apiKey: "dfk_secret", fetchImpl });
  const answer = await client.analyze("https://cdn.example/a.jpg");
  assert.equal(answer.done, true);
  assert.equal(answer.result.report.verdict, "real");
  assert.equal(answer.result.reportUrl, `${BASE}/analyses/a1`);
  assert.equal(calls[0].url, `${BASE}/api/v1/analyze`);
  assert.equal(calls[0].method, "POST");
  assert.deepEqual(calls[0].body, { url: "https://cdn.example/a.jpg" });
  assert.equal(calls[0].headers.Authorization, "Bearer dfk_secret");
});

test("a video answers 202 with a job, polled until done", async () => {
  let polls = 0;
  const { fetchImpl, calls } = fakeFetch([
    ["/api/v1/analyze", { status: 202, body: { job_id: "j1", status: "queued", status_url: `${BASE}/api/v1/jobs/j1`, progress: { stage: "queued", fraction: 0 } } }],
    [
      "/api/v1/jobs/j1",
      () => {
        polls += 1;
        return polls < 2
          ? { body: { job_id: "j1", status: "running", progress: { stage: "faces", fraction: 0.6 } } }
          : { body: { job_id: "j1", ...done("fake") } };
      },
    ],
  ]);
  const client = new BackendClient({ baseUrl: BASE, fetchImpl });
  const submitted = await client.analyze("https://x.com/a/status/1");
  assert.deepEqual(submitted, { done: false, job: { jobId: "j1", status: "queued", progress: { stage: "queued", fraction: 0 }, retryAfterS: null } });
  const running = await client.job("j1");
  assert.equal(running.done, false);
  assert.deepEqual(running.job.progress, { stage: "faces", fraction: 0.6 });
  const finished = await client.job("j1");
  assert.equal(finished.result.report.verdict, "fake");
  assert.equal(calls[1].headers.Authorization, undefined, "no key, no header");
});

test("a failed job is a BackendError with the job's code and retryability", async () => {
  const { fetchImpl } = fakeFetch([
    ["/api/v1/jobs/j2", { body: { job_id: "j2", status: "failed", error: { code: "media_too_long", message: "too long" }, retryable: false } }],
  ]);
  await assert.rejects(new BackendClient({ baseUrl: BASE, fetchImpl }).job("j2"), (error) => {
    assert.ok(error instanceof BackendError);
    assert.equal(error.code, "media_too_long");
    assert.equal(error.retryable, false);
    return true;
  });
});

test("HTTP errors keep the backend's code, status and Retry-After", async () => {
  const { fetchImpl } = fakeFetch([
    ["/api/v1/analyze", { status: 429, body: { error: { code: "rate_limited", message: "too many requests" } }, headers: { "Retry-After": "17" } }],
  ]);
  await assert.rejects(new BackendClient({ baseUrl: BASE, fetchImpl }).analyze("https://a.example/v.mp4"), (error) => {
    assert.equal(error.code, "rate_limited");
    assert.equal(error.status, 429);
    assert.equal(error.retryAfterS, 17);
    assert.equal(error.retryable, true);
    return true;
  });
});

test("a refused blob: URL answers 400 unsupported_url_scheme", async () => {
  const { fetchImpl } = fakeFetch([["/api/v1/analyze", { status: 400, body: { error: { code: "unsupported_url_scheme", message: "only http(s)" } } }]]);
  await assert.rejects(new BackendClient({ baseUrl: BASE, fetchImpl }).analyze("blob:x"), { code: "unsupported_url_scheme", status: 400, retryable: false });
});

test("a proxy's HTML error page and a report without a verdict are bad responses", async () => {
  const { fetchImpl } = fakeFetch([
    ["/api/v1/analyze", { status: 502, body: "<html>Bad Gateway</html>" }],
    ["/api/v1/jobs/j3", { body: { job_id: "j3", status: "done", report: { nothing: true } } }],
  ]);
  const client = new BackendClient({ baseUrl: BASE, fetchImpl });
  await assert.rejects(client.analyze("https://a.example/v.mp4"), { code: "http_502", status: 502 });
  await assert.rejects(client.job("j3"), { code: "bad_response" });
});

test("a backend that is not running is 'unreachable'", async () => {
  const { fetchImpl } = fakeFetch([]);
  await assert.rejects(new BackendClient({ baseUrl: BASE, fetchImpl }).analyze("https://a.example/v.mp4"), (error) => {
    assert.equal(error.code, "unreachable");
    assert.equal(error.status, null);
    assert.equal(error.backendUrl, BASE);
    assert.equal(error.retryable, true);
    return true;
  });
});

test("health: ready, loading, offline", async () => {
  const ready = fakeFetch([
    ["/healthz", { body: { status: "ok" } }],
    ["/readyz", { body: { status: "ready", model: { id: "default" }, queued_jobs: 0 } }],
  ]);
  assert.deepEqual(await new BackendClient({ baseUrl: BASE, fetchImpl: ready.fetchImpl }).health(), { ok: true, ready: true, model: { id: "default" }, message: "ready", queued: 0 });
  const loading = fakeFetch([
    ["/healthz", { body: { status: "ok" } }],
    ["/readyz", { status: 503, body: { error: { code: "not_ready", message: "the model is still loading" } } }],
  ]);
  const health = await new BackendClient({ baseUrl: BASE, fetchImpl: loading.fetchImpl }).health();
  assert.equal(health.ok, true);
  assert.equal(health.ready, false);
  const offline = await new BackendClient({ baseUrl: BASE, fetchImpl: fakeFetch([]).fetchImpl }).health();
  assert.equal(offline.ok, false);
});
