// The live-quotes page: picks the symbols, subscribes, and keeps the
// table and the connection badge current.
import { QuoteStream } from './stream.js';
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

function badge(state, detail) {
  const el = document.getElementById('conn');
  el.dataset.state = state;
  const text = { connecting: `connecting (${detail})…`, live: `live · ${detail}`, reconnecting: detail }[state];
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
  setInterval(() => {
    rateEl.textContent = `${count} msg/s`;
    count = 0;
  }, 1000);
  const params = new URLSearchParams(location.search);
  const stream = new QuoteStream({
    symbols: syms,
    fields: FIELDS,
    maxHz: Number(params.get('maxHz')) || 0,
    transport: params.get('transport') ?? '',
    onMessage(m) {
      count++;
      if (m.type === 'close') console.info(`tickerd: stream closed: ${m.code}: ${m.message}`);
      else if (m.type === 'error' && !m.symbol) console.warn(`tickerd: ${m.code}: ${m.message}`);
      table.apply(m);
    },
    onState(state, detail) {
      badge(state, detail);
      table.offline(state !== 'live');
    },
  });
  stream.start();
}

main();
