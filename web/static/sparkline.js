// Canvas drawing: the per-row sparkline and the detail panel's chart.
// Colours come from the theme's CSS variables, read once per theme.

let palette = null;

// themeChanged forgets the cached colours (call after switching theme).
export function themeChanged() {
  palette = null;
}

function colors() {
  if (!palette) {
    const cs = getComputedStyle(document.documentElement);
    const v = (n) => cs.getPropertyValue(n).trim();
    palette = { up: v('--up'), down: v('--down'), muted: v('--muted'), line: v('--line'), text: v('--text'), flat: v('--flat') };
  }
  return palette;
}

// fit sizes the canvas's backing store to its CSS box (w x h, measured
// by the caller, or read here) and device pixels; returns the 2D context
// scaled to CSS pixels, or null when not laid out.
function fit(canvas, w = canvas.clientWidth, h = canvas.clientHeight) {
  if (!w || !h) return null;
  const dpr = Math.min(window.devicePixelRatio || 1, 2);
  const bw = Math.round(w * dpr), bh = Math.round(h * dpr);
  if (canvas.width !== bw || canvas.height !== bh) {
    canvas.width = bw;
    canvas.height = bh;
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

function extent(values, extra) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (Number.isFinite(extra)) {
    lo = Math.min(lo, extra);
    hi = Math.max(hi, extra);
  }
  if (hi === lo) {
    hi += 0.5;
    lo -= 0.5;
  }
  return [lo, hi];
}

// sparkline draws values at times (ms) as a line, green when the last is
// above the reference (the previous close, else the first point), red
// below. w and h are the canvas's CSS size, read by the caller before any
// DOM write of the frame so that no reflow is forced here.
export function sparkline(canvas, w, h, times, values, ref) {
  const f = fit(canvas, w, h);
  if (!f || values.length < 2) return;
  const { ctx } = f;
  const base = Number.isFinite(ref) ? ref : values[0];
  const [lo, hi] = extent(values);
  const t0 = times[0], span = Math.max(1, times[times.length - 1] - t0);
  const x = (i) => ((times[i] - t0) / span) * (w - 2) + 1;
  const y = (v) => h - 2 - ((v - lo) / (hi - lo)) * (h - 4);
  const c = colors();
  const last = values[values.length - 1];
  if (base >= lo && base <= hi) {
    ctx.strokeStyle = c.line;
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(0, Math.round(y(base)) + 0.5);
    ctx.lineTo(w, Math.round(y(base)) + 0.5);
    ctx.stroke();
  }
  ctx.strokeStyle = last > base ? c.up : last < base ? c.down : c.flat;
  ctx.lineWidth = 1.25;
  ctx.beginPath();
  values.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
  ctx.stroke();
}

// chart draws the detail panel's price chart: times (ms) and prices, a
// dashed previous close, and the range and last price labelled.
export function chart(canvas, times, prices, prevClose, digits = 2) {
  const f = fit(canvas);
  if (!f) return;
  const { ctx, w, h } = f;
  const c = colors();
  ctx.font = '11px ui-monospace, Menlo, Consolas, monospace';
  ctx.fillStyle = c.muted;
  if (prices.length < 2) {
    ctx.fillText('collecting price history…', 8, h / 2);
    return;
  }
  const padR = 64, padT = 8, padB = 18;
  const [lo, hi] = extent(prices, prevClose);
  const t0 = times[0], t1 = times[times.length - 1] || t0 + 1;
  const x = (t) => ((t - t0) / Math.max(1, t1 - t0)) * (w - padR - 4) + 2;
  const y = (v) => padT + (1 - (v - lo) / (hi - lo)) * (h - padT - padB);
  // Horizontal grid with price labels.
  ctx.strokeStyle = c.line;
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    const yy = Math.round(y(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(0, yy);
    ctx.lineTo(w - padR, yy);
    ctx.stroke();
    ctx.fillText(v.toFixed(digits), w - padR + 6, yy + 4);
  }
  // Time labels: first and last.
  const hm = (t) => new Date(t).toTimeString().slice(0, 8);
  ctx.fillText(hm(t0), 2, h - 4);
  const lastLabel = hm(t1);
  ctx.fillText(lastLabel, w - padR - ctx.measureText(lastLabel).width - 4, h - 4);
  if (Number.isFinite(prevClose)) {
    ctx.setLineDash([4, 4]);
    ctx.strokeStyle = c.muted;
    ctx.beginPath();
    ctx.moveTo(0, y(prevClose));
    ctx.lineTo(w - padR, y(prevClose));
    ctx.stroke();
    ctx.setLineDash([]);
  }
  const last = prices[prices.length - 1];
  const base = Number.isFinite(prevClose) ? prevClose : prices[0];
  const col = last > base ? c.up : last < base ? c.down : c.flat;
  // Area under the line, then the line.
  ctx.beginPath();
  prices.forEach((v, i) => (i ? ctx.lineTo(x(times[i]), y(v)) : ctx.moveTo(x(times[i]), y(v))));
  ctx.lineTo(x(t1), h - padB);
  ctx.lineTo(x(t0), h - padB);
  ctx.closePath();
  ctx.globalAlpha = 0.12;
  ctx.fillStyle = col;
  ctx.fill();
  ctx.globalAlpha = 1;
  ctx.strokeStyle = col;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  prices.forEach((v, i) => (i ? ctx.lineTo(x(times[i]), y(v)) : ctx.moveTo(x(times[i]), y(v))));
  ctx.stroke();
  // The last price, tagged on the axis.
  const ly = y(last);
  ctx.fillStyle = col;
  ctx.fillRect(w - padR + 2, ly - 8, padR - 2, 16);
  ctx.fillStyle = '#fff';
  ctx.fillText(last.toFixed(digits), w - padR + 6, ly + 4);
}
