// Connection statistics for the status bar: updates per second and the
// median latency (server ingest to this page) over the last minute, in
// one-second buckets with a bounded sample of each.

const BUCKETS = 60; // seconds kept
const SAMPLES = 128; // latency samples kept per second (reservoir)

export class Stats {
  constructor() {
    this.buckets = []; // oldest first: {count, seen, samples}
    this.cur = { count: 0, seen: 0, samples: [] };
  }

  // record counts one change; latency (ms) when the message carried one.
  record(latency) {
    const b = this.cur;
    b.count++;
    if (latency === undefined || !Number.isFinite(latency)) return;
    b.seen++;
    if (b.samples.length < SAMPLES) b.samples.push(latency);
    else {
      const j = Math.floor(Math.random() * b.seen);
      if (j < SAMPLES) b.samples[j] = latency;
    }
  }

  // roll closes the current second; call it once a second.
  roll() {
    this.buckets.push(this.cur);
    if (this.buckets.length > BUCKETS) this.buckets.shift();
    this.cur = { count: 0, seen: 0, samples: [] };
  }

  // rate is the updates per second of the last closed second(s).
  rate(seconds = 1) {
    const bs = this.buckets.slice(-seconds);
    return bs.length ? bs.reduce((n, b) => n + b.count, 0) / bs.length : 0;
  }

  // p50 is the median latency over the last minute, NaN without samples.
  // Each second weighs by its message count, through its sample.
  p50() {
    const pts = [];
    let total = 0;
    for (const b of this.buckets) {
      if (!b.samples.length) continue;
      const w = b.seen / b.samples.length;
      for (const v of b.samples) pts.push([v, w]);
      total += b.seen;
    }
    if (!pts.length) return NaN;
    pts.sort((a, b) => a[0] - b[0]);
    let acc = 0;
    for (const [v, w] of pts) {
      acc += w;
      if (acc >= total / 2) return v;
    }
    return pts[pts.length - 1][0];
  }
}
