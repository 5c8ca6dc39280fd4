// How long to wait before polling a job again: exponential back-off with jitter, honouring Retry-After.

export const POLL_DEFAULTS = Object.freeze({ baseMs: 1000, factor: 1.6, maxMs: 15000, jitter: 0.2, maxRetryAfterMs: 120000 });

/**
 * The delay before poll number `attempt` (0 for the first): baseMs·factor^attempt, capped at maxMs, spread by
 * ±jitter so many tabs do not poll in step; never shorter than the server's Retry-After.
 */
export function pollDelay(attempt, { retryAfterS = null, random = Math.random, ...options } = {}) {
  const { baseMs, factor, maxMs, jitter, maxRetryAfterMs } = { ...POLL_DEFAULTS, ...options };
  const n = Math.max(0, Math.floor(Number(attempt) || 0));
  const raw = Math.min(maxMs, baseMs * factor ** n);
  const spread = raw * jitter * (2 * random() - 1);
  let delay = Math.round(Math.min(maxMs, Math.max(baseMs / 2, raw + spread)));
  if (typeof retryAfterS === "number" && Number.isFinite(retryAfterS) && retryAfterS > 0) {
    delay = Math.max(delay, Math.min(maxRetryAfterMs, Math.round(retryAfterS * 1000)));
  }
  return delay;
}

/** Seconds from a Retry-After header (delta-seconds or an HTTP date), or null. */
export function parseRetryAfter(value, now = Date.now()) {
  if (value == null || value === "") return null;
  const text = String(value).trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const when = Date.parse(text);
  if (Number.isNaN(when)) return null;
  return Math.max(0, (when - now) / 1000);
}
