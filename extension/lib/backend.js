// The backend's HTTP API as the extension uses it: analyse a URL, poll a job, check health.
//
// Every failure becomes a BackendError with a code (the backend's own error code, or "unreachable", "timeout",
// "bad_response"), the HTTP status and Retry-After when there was one, so lib/labels.js can say what happened.
// Response shapes (server/api.py): 200 {id, status: "done", cached, report_url, report};
// 202 {job_id, status, status_url}; GET /jobs/<id> {job_id, status, progress, (done) report..., (failed) error}.

import { parseRetryAfter } from "./backoff.js";

// Only these answers say when to come back; any other Retry-After (a rate limiter's window) is not about us.
const RETRY_AFTER_STATUSES = new Set([429, 503]);
// How long the backend may hold a job poll open (GET /api/v1/jobs/<id>?wait=): it answers when the job ends.
export const LONG_POLL_S = 20;

export class BackendError extends Error {
  constructor(code, message, { status = null, retryAfterS = null, retryable = null, backendUrl = null } = {}) {
    super(message || code);
    this.name = "BackendError";
    this.code = code;
    this.status = status;
    this.retryAfterS = retryAfterS;
    this.backendUrl = backendUrl;
    // Worth trying again later: the backend said so, or the failure is of the passing kind.
    this.retryable = retryable ?? (status == null ? code !== "bad_response" : status === 429 || status >= 500);
  }

  /** Plain data for storage and messages. */
  toJSON() {
    return {
      code: this.code,
      message: this.message,
      status: this.status,
      retryAfterS: this.retryAfterS,
      retryable: this.retryable,
      backendUrl: this.backendUrl,
    };
  }
}

const VERDICTS = new Set(["real", "fake", "uncertain", "no_face"]);

export class BackendClient {
  constructor({ baseUrl, apiKey = "", fetchImpl = null, timeoutMs = 150000 } = {}) {
    this.baseUrl = String(baseUrl || "").replace(/\/+$/, "");
    this.apiKey = apiKey || "";
    this.fetchImpl = fetchImpl || ((...args) => globalThis.fetch(...args));
    this.timeoutMs = timeoutMs;
  }

  async #request(method, path, body = undefined, timeoutMs = this.timeoutMs) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (this.apiKey) headers.Authorization = `Bearer ${this.apiKey}`;
    let response;
    try {
      response = await this.fetchImpl(`${this.baseUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      const timedOut = error?.name === "TimeoutError" || error?.name === "AbortError";
      throw new BackendError(timedOut ? "timeout" : "unreachable", timedOut ? "the checker did not answer in time" : String(error?.message || error), {
        backendUrl: this.baseUrl,
      });
    }
    let json = null;
    try {
      json = await response.json();
    } catch {
      json = null;
    }
    const retryAfterS = RETRY_AFTER_STATUSES.has(response.status) ? parseRetryAfter(response.headers?.get?.("Retry-After")) : null;
    if (!response.ok) {
      const error = json && typeof json.error === "object" && json.error ? json.error : {};
      throw new BackendError(error.code || `http_${response.status}`, error.message || `the checker answered HTTP ${response.status}`, {
        status: response.status,
        retryAfterS,
        retryable: typeof json?.retryable === "boolean" ? json.retryable : null,
        backendUrl: this.baseUrl,
      });
    }
    if (json == null || typeof json !== "object") {
      throw new BackendError("bad_response", `the checker answered HTTP ${response.status} without JSON`, {
        status: response.status,
        backendUrl: this.baseUrl,
      });
    }
    return { status: response.status, json, retryAfterS };
  }

  #result(json) {
    const report = json.report;
    if (!report || typeof report !== "object" || !VERDICTS.has(report.verdict)) {
      throw new BackendError("bad_response", "the checker's answer has no report with a verdict", { backendUrl: this.baseUrl });
    }
    const matches = Array.isArray(json.matches) ? json.matches : []; // earlier analyses of the same media (server/memory.py)
    return { id: json.id ?? null, reportUrl: typeof json.report_url === "string" ? json.report_url : null, report, cached: Boolean(json.cached), matches };
  }

  #job(json, retryAfterS) {
    if (typeof json.job_id !== "string" || !json.job_id) {
      throw new BackendError("bad_response", "the checker's answer names no job", { backendUrl: this.baseUrl });
    }
    const progress = json.progress && typeof json.progress === "object" ? json.progress : { stage: json.status || "queued", fraction: 0 };
    return { jobId: json.job_id, status: json.status, progress, retryAfterS };
  }

  /** POST /api/v1/analyze: {done: true, result} (images, cached answers) or {done: false, job} (videos). */
  async analyze(url, { frames = null, model = null } = {}) {
    const body = { url };
    if (frames) body.frames = frames;
    if (model) body.model = model;
    const { status, json, retryAfterS } = await this.#request("POST", "/api/v1/analyze", body);
    if (status === 202 || (json.job_id && json.status !== "done")) return { done: false, job: this.#job(json, retryAfterS) };
    return { done: true, result: this.#result(json) };
  }

  /**
   * GET /api/v1/jobs/<id>?wait=waitS: {done: true, result}, {done: false, job}, or a BackendError when the job
   * failed. With waitS the backend answers as soon as the job ends (or after waitS seconds).
   */
  async job(jobId, { waitS = 0 } = {}) {
    const query = waitS > 0 ? `?wait=${waitS}` : "";
    const { json, retryAfterS } = await this.#request("GET", `/api/v1/jobs/${encodeURIComponent(jobId)}${query}`, undefined, 30000 + waitS * 1000);
    if (json.status === "done") return { done: true, result: this.#result(json) };
    if (json.status === "failed") {
      const error = json.error || {};
      throw new BackendError(error.code || "job_failed", error.message || "the check failed", {
        retryable: Boolean(json.retryable),
        backendUrl: this.baseUrl,
      });
    }
    return { done: false, job: this.#job(json, retryAfterS) };
  }

  /** GET /healthz then /readyz: {ok, ready, model, message}. Never throws. */
  async health() {
    try {
      await this.#request("GET", "/healthz", undefined, 5000);
    } catch (error) {
      return { ok: false, ready: false, model: null, message: error.message, code: error.code };
    }
    try {
      const { json } = await this.#request("GET", "/readyz", undefined, 5000);
      return { ok: true, ready: true, model: json.model || null, message: "ready", queued: json.queued_jobs ?? null };
    } catch (error) {
      return { ok: true, ready: false, model: null, message: error.message, code: error.code };
    }
  }
}
