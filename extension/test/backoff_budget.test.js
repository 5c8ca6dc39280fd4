// Polling back-off and the per-minute request budget.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { parseRetryAfter, pollDelay } from "../lib/backoff.js";
import { RequestBudget } from "../lib/budget.js";

describe("poll back-off", () => {
  const middle = () => 0.5; // no jitter

  test("grows geometrically from one second and stops at the cap", () => {
    const delays = [0, 1, 2, 3, 4, 5, 6, 10, 50].map((n) => pollDelay(n, { random: middle }));
    assert.deepEqual(delays.slice(0, 4), [1000, 1600, 2560, 4096]);
    for (let i = 1; i < delays.length; i += 1) assert.ok(delays[i] >= delays[i - 1]);
    assert.equal(delays.at(-1), 15000);
  });

  test("jitter stays within ±20% and the cap", () => {
    for (const random of [() => 0, () => 0.999]) {
      const d = pollDelay(2, { random });
      assert.ok(d >= 2560 * 0.8 - 1 && d <= 2560 * 1.2 + 1, String(d));
      assert.ok(pollDelay(40, { random }) <= 15000);
    }
  });

  test("Retry-After is honoured, within reason", () => {
    assert.equal(pollDelay(0, { random: middle, retryAfterS: 12 }), 12000);
    assert.equal(pollDelay(0, { random: middle, retryAfterS: 3600 }), 120000);
    assert.equal(pollDelay(0, { random: middle, retryAfterS: null }), 1000);
  });

  test("Retry-After headers: seconds or an HTTP date", () => {
    assert.equal(parseRetryAfter("10"), 10);
    assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", Date.parse("Wed, 21 Oct 2015 07:28:00 GMT")), 30);
    assert.equal(parseRetryAfter(null), null);
    assert.equal(parseRetryAfter("soon"), null);
  });
});

describe("request budget", () => {
  test("never more than the limit in any minute", () => {
    let now = 0;
    const budget = new RequestBudget(3, { now: () => now });
    assert.deepEqual([budget.tryTake(), budget.tryTake(), budget.tryTake(), budget.tryTake()], [true, true, true, false]);
    assert.equal(budget.msUntilNext(), 60000);
    now = 30000;
    assert.equal(budget.tryTake(), false);
    assert.equal(budget.msUntilNext(), 30000);
    now = 60001;
    assert.equal(budget.remaining(), 3);
    assert.equal(budget.tryTake(), true);
  });

  test("a sliding window, not a fixed one", () => {
    let now = 0;
    const budget = new RequestBudget(2, { now: () => now });
    budget.tryTake();
    now = 50000;
    budget.tryTake();
    now = 61000; // the first one left the window, the second has not
    assert.equal(budget.remaining(), 1);
    assert.equal(budget.tryTake(), true);
    assert.equal(budget.tryTake(), false);
    assert.equal(budget.msUntilNext(), 50000 + 60000 - 61000);
  });

  test("manual checks count against it but are never refused", () => {
    let now = 0;
    const budget = new RequestBudget(1, { now: () => now });
    budget.record();
    budget.record();
    assert.equal(budget.tryTake(), false);
  });

  test("survives a restart through its stored form", () => {
    let now = 1000;
    const budget = new RequestBudget(2, { now: () => now });
    budget.tryTake();
    budget.tryTake();
    const restored = new RequestBudget(2, { now: () => now, times: JSON.parse(JSON.stringify(budget)).times });
    assert.equal(restored.tryTake(), false);
    now = 62000;
    assert.equal(restored.tryTake(), true);
  });
});
