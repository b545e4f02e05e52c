// Formatting of tickerd's decimal strings for display. Values stay
// strings: nothing here goes through a float except the time of day.

// sign returns -1, 0 or 1 for a decimal string.
export function sign(s) {
  if (s.startsWith('-')) return /[1-9]/.test(s) ? -1 : 0;
  return /[1-9]/.test(s) ? 1 : 0;
}

// cmp compares two plain-notation decimal strings: -1, 0 or 1.
export function cmp(a, b) {
  const sa = sign(a), sb = sign(b);
  if (sa !== sb) return sa < sb ? -1 : 1;
  if (sa === 0) return 0;
  const m = cmpAbs(a.replace('-', ''), b.replace('-', ''));
  return sa < 0 ? -m : m;
}

function cmpAbs(a, b) {
  let [ai, af = ''] = a.split('.');
  let [bi, bf = ''] = b.split('.');
  ai = ai.replace(/^0+/, '');
  bi = bi.replace(/^0+/, '');
  if (ai.length !== bi.length) return ai.length < bi.length ? -1 : 1;
  const n = Math.max(af.length, bf.length);
  const x = ai + af.padEnd(n, '0');
  const y = bi + bf.padEnd(n, '0');
  return x === y ? 0 : x < y ? -1 : 1;
}

// fixed pads a decimal string to at least min fraction digits.
export function fixed(s, min = 2) {
  const [i, f = ''] = s.split('.');
  return f.length >= min ? s : `${i}.${f.padEnd(min, '0')}`;
}

// grouped puts thousands separators in a decimal string's integer part.
export function grouped(s) {
  const [i, f] = s.split('.');
  const g = i.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return f === undefined ? g : `${g}.${f}`;
}

// signed prefixes "+" to a positive decimal string.
export function signed(s) {
  return sign(s) > 0 ? `+${s}` : s;
}

// clock formats an RFC 3339 time as the local time of day.
export function clock(s) {
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return s;
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

// hms formats an RFC 3339 time as the local time of day to the second.
export function hms(s) {
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return s;
  const p = (n) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// digits is the number of fraction digits of a decimal string.
export function digits(s) {
  const i = s.indexOf('.');
  return i < 0 ? 0 : s.length - i - 1;
}
