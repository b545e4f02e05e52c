// Bounded per-symbol history: the price since the page opened, in two
// tiers of time buckets (fine for the last 15 minutes, coarse for the
// day), and the most recent ticks. Nothing here grows with the feed rate;
// a symbol's history is a few tens of KB however long the page stays open.

export const FINE_MS = 1000; // fine points: one per second...
export const FINE_POINTS = 900; // ...for 15 minutes
export const COARSE_MS = 30000; // coarse points: one per 30 s...
export const COARSE_POINTS = 1200; // ...for 10 hours, a trading day
export const MAX_TICKS = 50; // recent ticks kept per symbol

// Series is prices in time buckets, capped: the oldest go first.
class Series {
  constructor(bucket, cap) {
    this.bucket = bucket;
    this.cap = cap;
    this.times = []; // bucket start, ms
    this.prices = []; // the last price seen in the bucket (a float: drawing only)
  }

  add(t, p) {
    const b = t - (t % this.bucket);
    const n = this.times.length;
    if (n && this.times[n - 1] >= b) {
      this.prices[n - 1] = p;
      return;
    }
    this.times.push(b);
    this.prices.push(p);
    if (this.times.length > this.cap) {
      // Drop in chunks: amortized, and never more than cap + 64 kept.
      this.times.splice(0, 64);
      this.prices.splice(0, 64);
    }
  }
}

export class History {
  constructor() {
    this.fine = new Series(FINE_MS, FINE_POINTS);
    this.coarse = new Series(COARSE_MS, COARSE_POINTS);
    this.ticks = []; // newest last: {t, fields, changed}
    this.version = 0; // bumped on every change, for lazy redraws
  }

  // price records the price p at time t (ms).
  price(t, p) {
    if (!Number.isFinite(p)) return;
    this.fine.add(t, p);
    this.coarse.add(t, p);
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

  // series returns the price since the page opened as {times, prices} of
  // at most n points: coarse points older than the fine tier, then the
  // fine ones, thinned to n even slots of time (each slot keeps its last
  // point, so the newest price is always the last).
  series(n) {
    const f = this.fine, c = this.coarse;
    let times = f.times, prices = f.prices;
    const start = f.times[0];
    if (c.times.length && c.times[0] < start - COARSE_MS) {
      let k = 0;
      while (k < c.times.length && c.times[k] < start - COARSE_MS) k++;
      times = c.times.slice(0, k).concat(f.times);
      prices = c.prices.slice(0, k).concat(f.prices);
    }
    if (times.length <= n) return { times, prices };
    const t0 = times[0], span = Math.max(1, times[times.length - 1] - t0);
    const t = [], p = [];
    let slot = -1;
    for (let i = 0; i < times.length; i++) {
      const s = Math.min(n - 1, Math.floor(((times[i] - t0) / span) * n));
      if (s !== slot) {
        t.push(times[i]);
        p.push(prices[i]);
        slot = s;
      } else {
        t[t.length - 1] = times[i];
        p[p.length - 1] = prices[i];
      }
    }
    return { times: t, prices: p };
  }
}

// priceOf picks the price a chart follows: last trade, else the mid.
export function priceOf(fields) {
  if (fields.last !== undefined) return Number(fields.last);
  if (fields.bid !== undefined && fields.ask !== undefined) return (Number(fields.bid) + Number(fields.ask)) / 2;
  return NaN;
}
