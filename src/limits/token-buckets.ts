/** One caller's bucket: tokens left, and when that was counted. */
interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token buckets in memory, one per key: each holds at most `capacity` tokens and refills at
 * `perSecond`; a take spends one. A key that was full again is forgotten at the next sweep,
 * and at most `maxKeys` are kept (the oldest go first), so a flood of distinct keys cannot
 * grow the map without bound. Pure and synchronous: the request path pays a map lookup.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweep = 0;

  constructor(
    readonly capacity: number,
    readonly perSecond: number,
    private readonly maxKeys = 100_000,
  ) {}

  /** Spends a token of `key`: 0 when one was there, else the milliseconds until there is one. */
  take(key: string, now = performance.now()): number {
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      this.sweep(now);
      bucket = { tokens: this.capacity, at: now };
      this.buckets.set(key, bucket);
    } else {
      bucket.tokens = Math.min(
        this.capacity,
        bucket.tokens + ((now - bucket.at) * this.perSecond) / 1000,
      );
      bucket.at = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) * 1000) / this.perSecond);
  }

  /** Gives back a token a take spent (the thing it was spent on turned out free). */
  refund(key: string): void {
    const bucket = this.buckets.get(key);
    if (bucket !== undefined) {
      bucket.tokens = Math.min(this.capacity, bucket.tokens + 1);
    }
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Forgets full buckets (at most once a second), and the oldest keys past maxKeys. */
  private sweep(now: number): void {
    if (now - this.lastSweep >= 1000) {
      this.lastSweep = now;
      const fullAfterMs = (this.capacity * 1000) / this.perSecond;
      for (const [key, bucket] of this.buckets) {
        if (now - bucket.at >= fullAfterMs) {
          this.buckets.delete(key);
        }
      }
    }
    for (const key of this.buckets.keys()) {
      if (this.buckets.size < this.maxKeys) {
        break;
      }
      this.buckets.delete(key);
    }
  }
}
