// The live-quotes page: picks the symbols, subscribes through tickerd's
// JavaScript client (the module integrators import, /v1/client.js), and
// keeps the table and the connection badge current.
import { TickerClient, TRANSPORTS } from './v1/client.js';
import { FIELDS, QuoteTable } from './table.js';

const MAX_ROWS = 20;

// symbols returns ?symbols=A,B from the page URL, else the first symbols
// the server lists, asking again until it lists some.
async function symbols(note) {
  const param = new URLSearchParams(location.search).get('symbols');
  if (param) {
    return [...new Set(param.split(',').map((s) => s.trim().toUpperCase()).filter(Boolean))];
  }
  for (let wait = 1000; ; wait = Math.min(wait * 2, 10000)) {
    try {
      const r = await fetch(new URL('v1/symbols', location.href));
      if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
      const list = (await r.json()).symbols;
      if (list.length) return list.slice(0, MAX_ROWS);
      note('No symbols yet: waiting for the feed…');
    } catch (err) {
      note(`Cannot list symbols (${err.message}); retrying…`);
    }
    await new Promise((ok) => setTimeout(ok, wait));
  }
}

const NAMES = { ws: 'WebSocket', sse: 'SSE', poll: 'long-poll' };

function badge({ state, transport, reason, retryIn }) {
  const el = document.getElementById('conn');
  el.dataset.state = state === 'open' ? 'live' : state;
  const name = NAMES[transport] ?? transport;
  const text = {
    connecting: `connecting (${name})…`,
    open: `live · ${name}`,
    reconnecting: retryIn ? `${reason}; retry in ${(retryIn / 1000).toFixed(1)} s` : `reconnecting (${name})…`,
    closed: `closed: ${reason}`,
  }[state];
  el.querySelector('b').textContent = text;
}

async function main() {
  const noteEl = document.getElementById('note');
  const note = (text) => {
    noteEl.textContent = text;
    noteEl.hidden = !text;
  };
  const syms = await symbols(note);
  note('');
  const table = new QuoteTable(document.querySelector('#quotes tbody'), syms);
  let count = 0;
  const rateEl = document.getElementById('rate');
  const params = new URLSearchParams(location.search);
  // ?transport=sse or poll starts the fallback chain there.
  const first = TRANSPORTS.indexOf(params.get('transport'));
  const client = new TickerClient({ transports: TRANSPORTS.slice(Math.max(first, 0)) });
  setInterval(() => {
    const ms = client.latency.avg;
    rateEl.textContent = `${count} msg/s` + (Number.isNaN(ms) ? '' : ` · ${ms.toFixed(0)} ms`);
    count = 0;
  }, 1000);
  client.onState((s) => {
    badge(s);
    table.offline(s.state !== 'open');
  });
  client.onError((e) => {
    if (e.symbol) table.apply({ type: 'error', ...e });
    else console.warn(`tickerd: ${e.code}: ${e.message}`);
  });
  // Each change carries the symbol's whole record: the table takes it as
  // a snapshot and repaints the cells that differ.
  client.onChange((q) => {
    count++;
    table.apply({ type: 'snapshot', symbol: q.symbol, seq: q.seq, fields: q.fields });
  });
  client.subscribe(syms, { fields: FIELDS, maxHz: Number(params.get('maxHz')) || 0 });
  client.start();
}

main();
