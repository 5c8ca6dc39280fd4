// The request budget: at most N analyse requests in any sliding minute. Auto-label asks before each request
// and waits when the budget is spent; manual checks are always sent but count against it.

export class RequestBudget {
  /** `limit` requests per `windowMs`; `times` are earlier request times (restored from storage). */
  constructor(limit, { windowMs = 60000, now = () => Date.now(), times = [] } = {}) {
    this.limit = Math.max(0, Math.floor(Number(limit) || 0));
    this.windowMs = windowMs;
    this.now = now;
    this.times = times.filter((t) => typeof t === "number").sort((a, b) => a - b);
  }

  #prune() {
    const since = this.now() - this.windowMs;
    while (this.times.length && this.times[0] <= since) this.times.shift();
  }

  /** Requests left in the current window. */
  remaining() {
    this.#prune();
    return Math.max(0, this.limit - this.times.length);
  }

  /** Take one request if the budget allows it; true when taken. */
  tryTake() {
    if (this.remaining() <= 0) return false;
    this.times.push(this.now());
    return true;
  }

  /** Count a request that was sent regardless (a manual check). */
  record() {
    this.#prune();
    this.times.push(this.now());
  }

  /** Milliseconds until the next request would be allowed (0 when one is allowed now). */
  msUntilNext() {
    if (this.remaining() > 0) return 0;
    if (this.limit === 0) return this.windowMs;
    const oldestCounted = this.times[this.times.length - this.limit];
    return Math.max(0, oldestCounted + this.windowMs - this.now());
  }

  toJSON() {
    this.#prune();
    return { times: [...this.times] };
  }
}
