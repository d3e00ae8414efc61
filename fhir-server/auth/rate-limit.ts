/**
 * Token-bucket rate limits, per key (a client id, or a network address at the token endpoint), per process: each
 * key may make `perSecond` requests a second on average and `burst` at once. With several worker processes the
 * effective limit is the per-process one times the number of workers; that is stated in the README.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number = perSecond * 2,
  ) {}

  get enabled(): boolean {
    return this.perSecond > 0;
  }

  /** Takes one token for `key`; returns 0 when allowed, otherwise the seconds to wait before trying again. */
  take(key: string): number {
    if (!this.enabled) {
      return 0;
    }
    const now = performance.now();
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size > 100_000) {
        this.buckets.clear();
      }
      bucket = { tokens: this.burst, at: now };
      this.buckets.set(key, bucket);
    }
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond);
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.perSecond));
  }
}
