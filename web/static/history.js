// Bounded per-symbol history: a price series in fixed time buckets for the
// sparklines and the detail chart, and the most recent ticks. Nothing here
// grows with the feed rate or the session's length.

export const BUCKET_MS = 1000; // one chart point per second
export const MAX_POINTS = 900; // 15 minutes of points per symbol
export const SPARK_POINTS = 120; // the sparkline shows the last 2 minutes
export const MAX_TICKS = 50; // recent ticks kept per symbol

export class History {
  constructor() {
    this.times = []; // bucket start, ms
    this.prices = []; // last price seen in the bucket (a float: drawing only)
    this.ticks = []; // newest last: {t, fields, changed}
    this.version = 0; // bumped on every change, for lazy redraws
  }

  // price records the price p at time t (ms): a new point per bucket, the
  // bucket's last value otherwise.
  price(t, p) {
    if (!Number.isFinite(p)) return;
    const b = t - (t % BUCKET_MS);
    const n = this.times.length;
    if (n && this.times[n - 1] >= b) {
      this.prices[n - 1] = p;
    } else {
      this.times.push(b);
      this.prices.push(p);
      if (this.times.length > MAX_POINTS) {
        // Drop in chunks: amortized, and never more than MAX_POINTS + 64.
        this.times.splice(0, 64);
        this.prices.splice(0, 64);
      }
    }
    this.version++;
  }

  // tick keeps a copy of the changed fields of one message.
  tick(t, fields, changed) {
    const f = {};
    for (const k of changed) f[k] = fields[k];
    this.ticks.push({ t, fields: f, changed });
    if (this.ticks.length > 2 * MAX_TICKS) this.ticks.splice(0, this.ticks.length - MAX_TICKS);
    this.version++;
  }

  // recent returns up to n ticks, newest first.
  recent(n = MAX_TICKS) {
    return this.ticks.slice(-n).reverse();
  }

  // tail returns the last n prices.
  tail(n) {
    return this.prices.slice(-n);
  }
}

// priceOf picks the price a chart follows: last trade, else the mid.
export function priceOf(fields) {
  if (fields.last !== undefined) return Number(fields.last);
  if (fields.bid !== undefined && fields.ask !== undefined) return (Number(fields.bid) + Number(fields.ask)) / 2;
  return NaN;
}
