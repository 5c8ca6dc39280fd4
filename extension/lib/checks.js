// Runs checks: submit a URL, poll its job with back-off, label the badge(s) at every step, keep the state in
// storage so a stopped service worker picks up where it was (`resume()` at every start and on an alarm).
//
// Plain JavaScript with its surroundings handed in (storage area, backend client, how labels reach a tab, how
// to sleep, the clock), so Node tests drive whole checks, restarts included.

import { BackendError, LONG_POLL_S } from "./backend.js";
import { pollDelay } from "./backoff.js";
import { labelForError, labelForProgress, labelForResult } from "./labels.js";

export const CHECKS_KEY = "checks";
export const HISTORY_KEY = "history";
export const CACHE_KEY = "resultCache";
export const HISTORY_SIZE = 20;
export const CACHE_SIZE = 300;
export const CACHE_TTL_MS = 6 * 3600 * 1000;

/** Read-modify-write of one storage key, serialised so concurrent updates do not lose each other. */
export class StoredMap {
  constructor(area, key) {
    this.area = area;
    this.key = key;
    this.queue = Promise.resolve();
  }

  async read() {
    const stored = await this.area.get(this.key);
    const value = stored ? stored[this.key] : undefined;
    return value && typeof value === "object" ? value : {};
  }

  /** Apply `change(value)` (which mutates or returns a new value) and store the result. */
  update(change) {
    const run = this.queue.then(async () => {
      const value = await this.read();
      const next = (await change(value)) ?? value;
      await this.area.set({ [this.key]: next });
      return next;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/** The last checks, newest first, for the popup. */
export class CheckHistory {
  constructor(area, size = HISTORY_SIZE) {
    this.map = new StoredMap(area, HISTORY_KEY);
    this.size = size;
  }

  async list() {
    const value = await this.map.read();
    return Array.isArray(value.items) ? value.items : [];
  }

  add(entry) {
    return this.map.update((value) => {
      const items = Array.isArray(value.items) ? value.items.filter((item) => item.id !== entry.id) : [];
      return { items: [entry, ...items].slice(0, this.size) };
    });
  }
}

/** Finished labels by checked URL, so auto-label does not ask twice for what it already knows. */
export class ResultCache {
  constructor(area, { size = CACHE_SIZE, ttlMs = CACHE_TTL_MS, now = () => Date.now() } = {}) {
    this.map = new StoredMap(area, CACHE_KEY);
    this.size = size;
    this.ttlMs = ttlMs;
    this.now = now;
  }

  async get(url) {
    const entry = (await this.map.read())[url];
    return entry && this.now() - entry.at < this.ttlMs ? entry.label : null;
  }

  put(url, label) {
    return this.map.update((value) => {
      value[url] = { at: this.now(), label };
      const fresh = Object.entries(value)
        .filter(([, entry]) => entry && this.now() - entry.at < this.ttlMs)
        .sort((a, b) => b[1].at - a[1].at)
        .slice(0, this.size);
      return Object.fromEntries(fresh);
    });
  }
}

let counter = 0;
export function newId(now = Date.now()) {
  counter = (counter + 1) % 1e6;
  return `${now.toString(36)}-${counter.toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * A check is stored as {id, url, via, pageUrl, destinations: [{tabId, frameId, labelId}], phase: "submit"|"poll",
 * jobId, attempt, failures, retryAfterS, progress, lastPollMs, createdAt, manual}.
 */
export class CheckRunner {
  constructor({
    area,
    client,
    deliver,
    sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now = () => Date.now(),
    random = Math.random,
    onFinished = async () => {},
    onActivity = () => {},
    maxCheckMs = 15 * 60 * 1000,
    maxPollFailures = 6,
    longPollS = LONG_POLL_S,
  }) {
    this.checks = new StoredMap(area, CHECKS_KEY);
    this.client = client; // () => BackendClient (or a promise of one), per request so new settings apply at once
    this.deliver = deliver; // (destination, label, request) => Promise; failures (a closed tab) are ignored
    this.sleep = sleep;
    this.now = now;
    this.random = random;
    this.onFinished = onFinished; // (check, label) => Promise: history, cache, toolbar badge
    this.onActivity = onActivity; // (number of checks running) => void: keep-alive and alarms
    this.maxCheckMs = maxCheckMs;
    this.maxPollFailures = maxPollFailures;
    this.longPollS = longPollS;
    this.running = new Map(); // check id -> promise of its final label
  }

  /** Checks running in this worker. */
  get activeCount() {
    return this.running.size;
  }

  async stored() {
    return Object.values(await this.checks.read());
  }

  /**
   * Start checking `request.url` and label `request.destination`; resolves with the final label. A check of the
   * same URL already running gains the destination instead of a second request.
   */
  async start({ url, via = "media", pageUrl = null, destination = null, manual = true }) {
    const destinations = destination ? [destination] : [];
    let joined = null;
    let check = null;
    await this.checks.update((all) => {
      joined = Object.values(all).find((existing) => existing.url === url) || null;
      if (joined) {
        joined.destinations = [...(joined.destinations || []), ...destinations];
        if (manual) joined.manual = true; // someone asked: show them errors too
        return all;
      }
      check = { id: newId(this.now()), url, via, pageUrl, destinations, phase: "submit", jobId: null, attempt: 0, failures: 0, createdAt: this.now(), manual };
      all[check.id] = check;
      return all;
    });
    if (joined) {
      await this.#deliverAll(destinations, labelForProgress(joined.progress || {}), joined);
      const running = this.running.get(joined.id);
      return running || this.#run(joined.id);
    }
    await this.#deliverAll(destinations, labelForProgress({ stage: "sending" }), check);
    return this.#run(check.id);
  }

  /** Continue every stored check that is not running in this worker (after a restart, or on an alarm). */
  async resume() {
    const stored = await this.stored();
    return Promise.all(stored.filter((check) => !this.running.has(check.id)).map((check) => this.#run(check.id)));
  }

  #run(id) {
    if (this.running.has(id)) return this.running.get(id);
    const promise = this.#loop(id).finally(() => {
      this.running.delete(id);
      this.onActivity(this.running.size);
    });
    this.running.set(id, promise);
    this.onActivity(this.running.size);
    return promise;
  }

  async #load(id) {
    return (await this.checks.read())[id] || null;
  }

  async #save(check) {
    await this.checks.update((all) => {
      // Keep destinations added meanwhile by start() joining this check.
      const current = all[check.id];
      all[check.id] = { ...check, destinations: current?.destinations || check.destinations };
      return all;
    });
  }

  async #loop(id) {
    let check = await this.#load(id);
    if (!check) return null;
    let label;
    try {
      label = await this.#drive(check);
    } catch (error) {
      label = labelForError(error instanceof BackendError ? error.toJSON() : { code: "internal", message: String(error?.message || error) });
    }
    check = (await this.#load(id)) || check;
    await this.checks.update((all) => {
      delete all[id];
      return all;
    });
    await this.#deliverAll(check.destinations || [], label, check);
    try {
      await this.onFinished(check, label);
    } catch {
      // History and cache are conveniences: a failure there must not hide the label.
    }
    return label;
  }

  async #drive(check) {
    for (;;) {
      if (this.now() - check.createdAt > this.maxCheckMs) {
        throw new BackendError("timeout", "the check took too long; try again later", { retryable: true });
      }
      if (check.phase === "submit") {
        const answer = await (await this.client()).analyze(check.url);
        if (answer.done) return labelForResult(answer.result, check);
        check = { ...check, phase: "poll", jobId: answer.job.jobId, attempt: 0, failures: 0, progress: answer.job.progress };
        await this.#save(check);
        await this.#deliverLatest(check, labelForProgress(answer.job.progress));
        continue;
      }
      // Each poll is a long-poll that the backend answers when the job ends: the next one starts at once. Only
      // failures, a Retry-After, or answers that came back early (a backend that does not hold polls) back off.
      const delay = pollDelay(check.attempt, { retryAfterS: check.retryAfterS, random: this.random });
      const waited = check.failures || check.retryAfterS ? 0 : (check.lastPollMs ?? delay);
      if (delay > waited) await this.sleep(delay - waited);
      const began = this.now();
      let answer;
      try {
        answer = await (await this.client()).job(check.jobId, { waitS: this.longPollS });
      } catch (error) {
        const passing = error instanceof BackendError && error.status !== 404 && (error.status == null ? error.code === "unreachable" || error.code === "timeout" : error.status === 429 || error.status >= 500);
        if (!passing || check.failures + 1 >= this.maxPollFailures) throw error;
        check = { ...check, attempt: check.attempt + 1, failures: check.failures + 1, retryAfterS: error.retryAfterS };
        await this.#save(check);
        await this.#deliverLatest(check, labelForProgress({ ...(check.progress || {}), stage: "retrying" }));
        continue;
      }
      if (answer.done) return labelForResult(answer.result, check);
      check = { ...check, attempt: check.attempt + 1, failures: 0, retryAfterS: answer.job.retryAfterS, progress: answer.job.progress, lastPollMs: this.now() - began };
      await this.#save(check);
      await this.#deliverLatest(check, labelForProgress(answer.job.progress));
    }
  }

  async #deliverLatest(check, label) {
    const current = await this.#load(check.id);
    await this.#deliverAll(current?.destinations || check.destinations || [], label, check);
  }

  async #deliverAll(destinations, label, check) {
    const request = { url: check.url, via: check.via, manual: check.manual !== false };
    await Promise.all(
      destinations.map(async (destination) => {
        try {
          await this.deliver(destination, label, request);
        } catch {
          // The tab was closed or navigated away: nobody to show the label to.
        }
      }),
    );
  }
}
