// tickerd browser client: one connection per page, a local record per
// symbol, and the best transport the network allows.
//
//   import { connect } from 'http://127.0.0.1:8080/v1/client.js';
//   const client = connect();
//   client.subscribe(['AAPL', 'MSFT'], { fields: ['bid', 'ask'], maxHz: 4 });
//   client.onChange((q) => console.log(q.symbol, q.fields.bid, q.changed));
//
// Transports are tried in order, WebSocket, Server-Sent Events, then
// long-poll: one that cannot connect (blocked, refused, silent) is skipped
// for the next. A connection that drops is reopened after a jittered
// exponential backoff and resumes its session where the transport allows.
// Given several server URLs (the nodes of a tickerd cluster), a connection
// lost to a node that went away is reopened on the next one.
// The protocol is docs/protocol.md; this API is docs/client.md. No
// dependencies; runs in any browser with fetch and ES modules.

export const TRANSPORTS = Object.freeze(['ws', 'sse', 'poll']);

const DEFAULTS = {
  transports: TRANSPORTS,
  backoffMin: 500, // ms: first retry delay ceiling
  backoffMax: 30000, // ms: the largest retry delay
  connectTimeout: 10000, // ms a transport may take to deliver its first message
  silenceTimeout: 45000, // ms without a WebSocket message (heartbeats come every 15 s)
  pollWait: 25, // s a long-poll is held by the server
};

// Codes of a close message after which reconnecting is pointless.
const FATAL = new Set(['revoked', 'unauthorized']);

const clients = new Map(); // url + token → the page's shared client

// connect returns the page's client for this server and token, creating and
// starting it on first use: every caller shares one connection.
export function connect(options = {}) {
  const key = `${baseURLs(options.url).join(',')} ${options.token ?? ''}`;
  let c = clients.get(key);
  if (!c || c.state.state === 'closed') {
    c = new TickerClient(options);
    clients.set(key, c);
    c.start();
  }
  return c;
}

// baseURL is the server root: options.url, or where this module came from.
function baseURL(url) {
  const u = new URL(url ?? '..', url ? location.href : import.meta.url);
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  return u.href;
}

// baseURLs is the list of server roots: options.url may be one URL, a
// comma-separated list or an array (the nodes of a cluster).
function baseURLs(url) {
  const list = (Array.isArray(url) ? url : typeof url === 'string' ? url.split(',') : [])
    .map((u) => String(u).trim())
    .filter(Boolean);
  return list.length ? list.map((u) => baseURL(u)) : [baseURL(undefined)];
}

// nowMicros is the wall clock in Unix microseconds, to compare with ts.
const nowMicros = () => (performance.timeOrigin + performance.now()) * 1000;

export class TickerClient {
  // options: url (server root; default the origin this module came from;
  // a comma list or an array names the nodes of a cluster, tried in turn),
  // token (credential), transports (order to try; default all three),
  // backoffMin, backoffMax, connectTimeout, silenceTimeout (ms), pollWait (s).
  constructor(options = {}) {
    this.opts = { ...DEFAULTS };
    for (const [k, v] of Object.entries(options)) if (v !== undefined) this.opts[k] = v;
    this.bases = baseURLs(options.url);
    this.node = 0; // the node of bases in use
    this.base = this.bases[0];
    this.token = options.token ?? '';
    this.transports = this.opts.transports.filter(
      (t) => (t === 'ws' && 'WebSocket' in globalThis) || (t === 'sse' && 'EventSource' in globalThis) || t === 'poll',
    );
    if (!this.transports.length) throw new Error('tickerd: no usable transport');
    this.wanted = new Map(); // symbol → options key: what the page asked for
    this.keys = new Map(); // options key → {fields, maxHz}
    this.sent = new Map(); // symbol → options key: what the server session holds
    this.records = new Map(); // symbol → {symbol, seq, ts, fields, delayed}
    this.listeners = { change: new Set(), state: new Set(), error: new Set() };
    this.bySymbol = new Map(); // symbol → Set of change listeners
    this.session = ''; // id of the server session (SSE, long-poll)
    this.resume = ''; // its resume token
    this.count = 0; // messages of the session processed, heartbeats aside
    this.conn = null; // the live connection, if any
    this.index = 0; // the transport being tried
    this.failures = 0; // failed attempts since the last good connection
    this.timer = 0;
    this.opId = 0;
    this.pending = false; // a reconcile is queued
    this.everOpen = false;
    this.latency = { last: NaN, avg: NaN }; // ms, ingest to here
    this.state = { state: 'connecting', transport: '', reason: '', retryIn: 0 };
    this.reason = ''; // why the last connection ended, for the next states
  }

  // start opens the connection (connect() does it for you).
  start() {
    if (this.state.state === 'closed' || this.conn || this.timer) return;
    this.#open();
  }

  // subscribe adds symbols, or changes their fields and rate. Options:
  // fields (array, default all), maxHz (default the server's ceiling).
  subscribe(symbols, { fields = [], maxHz = 0 } = {}) {
    const opt = { fields: [...fields], maxHz: Number(maxHz) || 0 };
    const key = JSON.stringify(opt);
    this.keys.set(key, opt);
    for (const s of [symbols].flat()) this.wanted.set(String(s), key);
    this.#schedule();
  }

  // unsubscribe drops symbols; their records and listeners stay until
  // removed, but no change is reported any more.
  unsubscribe(symbols) {
    for (const s of [symbols].flat()) {
      this.wanted.delete(String(s));
      this.records.delete(String(s));
    }
    this.#schedule();
  }

  // get returns a symbol's record {symbol, seq, ts, fields, delayed}, or undefined.
  get(symbol) {
    return this.records.get(symbol);
  }

  // snapshot returns every record, by symbol.
  snapshot() {
    return Object.fromEntries(this.records);
  }

  // onChange(fn) or onChange(symbol, fn): fn gets one event per message
  // that changed a record: {symbol, seq, ts, fields, changed, type,
  // delayed, latency}. Returns a function that removes fn.
  onChange(symbol, fn) {
    if (typeof symbol === 'function') return this.#listen('change', symbol);
    let set = this.bySymbol.get(symbol);
    if (!set) this.bySymbol.set(symbol, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  // onState(fn): fn gets {state, transport, reason, retryIn} whenever the
  // connection changes; state is connecting, open, reconnecting or closed.
  onState(fn) {
    fn(this.state);
    return this.#listen('state', fn);
  }

  // onError(fn): fn gets {code, symbol, message} for refused symbols,
  // failed ops and the reason of a final close.
  onError(fn) {
    return this.#listen('error', fn);
  }

  // close ends the connection for good.
  close(reason = 'closed by the page') {
    this.#stop();
    this.#setState('closed', '', reason);
  }

  #listen(kind, fn) {
    this.listeners[kind].add(fn);
    return () => this.listeners[kind].delete(fn);
  }

  #emit(kind, ev) {
    for (const fn of this.listeners[kind]) {
      try {
        fn(ev);
      } catch (err) {
        console.error('tickerd: listener failed', err);
      }
    }
  }

  #setState(state, transport, reason = '', retryIn = 0) {
    this.state = { state, transport, reason, retryIn };
    this.#emit('state', this.state);
  }

  // Connections.

  #open() {
    this.timer = 0;
    const name = this.transports[this.index];
    this.#setState(this.everOpen ? 'reconnecting' : 'connecting', name, this.reason);
    const conn = { name, ready: false, opened: Date.now(), initial: new Map(), stop() {} };
    const guard = (fn) => (...args) => (this.conn === conn ? fn(...args) : undefined);
    const hooks = {
      // data takes a frame's text or a parsed list of messages.
      data: guard((d) => this.#data(conn, d)),
      reply: guard((d) => this.#data(conn, d, true)),
      sendable: guard(() => this.#reconcile()),
      lost: guard((why) => this.#lost(conn, why)),
      // stalled: the transport is reconnecting by itself; it has
      // connectTimeout to deliver again.
      stalled: guard((why) => {
        conn.live = false;
        conn.deadline = setTimeout(hooks.lost, this.opts.connectTimeout, why);
        this.#setState('reconnecting', conn.name, `${conn.name}: ${why}`);
      }),
      fatal: guard((code, why) => this.#fatal(code, why)),
    };
    this.conn = conn;
    conn.deadline = setTimeout(hooks.lost, this.opts.connectTimeout, 'no answer in time');
    const open = { ws: openWS, sse: openSSE, poll: openPoll }[name];
    open.call(this, conn, hooks);
  }

  // Methods named _x are the transports' helpers, not API.

  // _query is the opening request's parameters for a GET transport: resume
  // the session if there is one, else subscribe the largest group at once.
  _query(conn) {
    const q = new URLSearchParams();
    if (this.resume) {
      // TOKEN.N: N messages of the session processed, so that the server
      // resends exactly what changed since (protocol.md, Resume).
      q.set('resume', `${this.resume}.${this.count}`);
      return q;
    }
    const groups = this.#groups(new Map());
    let best = null;
    for (const [key, syms] of groups) if (!best || syms.length > best[1].length) best = [key, syms];
    if (best) {
      const opt = this.keys.get(best[0]);
      q.set('symbols', best[1].join(','));
      if (opt.fields.length) q.set('fields', opt.fields.join(','));
      if (opt.maxHz) q.set('maxHz', String(opt.maxHz));
      for (const s of best[1]) conn.initial.set(s, best[0]);
    }
    return q;
  }

  // _url resolves an endpoint against the server root.
  _url(path, q) {
    const u = new URL(path, this.base);
    if (q) u.search = q.toString();
    return u;
  }

  // _authed adds the credential: a header on the same origin, else ?token=
  // (a header would need a CORS preflight).
  _authed(u, init = {}) {
    if (!this.token) return [u, init];
    if (u.origin === location.origin) {
      return [u, { ...init, headers: { ...init.headers, Authorization: `Bearer ${this.token}` } }];
    }
    u.searchParams.set('token', this.token);
    return [u, init];
  }

  // #data handles a frame, event, line or poll entry; reply marks the
  // answer to a POST op, which is not part of the stream's count.
  #data(conn, d, reply = false) {
    let msgs = d;
    if (typeof d === 'string') {
      try {
        msgs = JSON.parse(d);
      } catch {
        console.warn('tickerd: undecodable message', d);
        return;
      }
    }
    if (!conn.live) {
      conn.ready = conn.live = true;
      clearTimeout(conn.deadline);
      this.failures = 0;
      this.everOpen = true;
      this.#setState('open', conn.name);
    }
    conn.watch?.();
    for (const m of [msgs].flat(2)) {
      if (this.conn !== conn) return; // a close message ended it
      if (!reply && m.type !== 'heartbeat') {
        // A new session's count starts at its session message.
        if (m.type === 'session' && m.session !== this.session) this.count = 0;
        this.count++;
      }
      this.#message(conn, m);
    }
  }

  #message(conn, m) {
    switch (m.type) {
      case 'session':
        if (m.session !== this.session) {
          // A new session (first, expired or after a restart): it holds
          // what the opening request asked for and nothing else.
          this.sent = conn.initial;
        }
        this.session = m.session;
        this.resume = m.resume;
        conn.sessionReady = true;
        this.#reconcile();
        return;
      case 'snapshot':
      case 'update':
        this.#apply(m);
        return;
      case 'error':
        this.#refused(m);
        return;
      case 'close':
        this.#closeMessage(conn, m);
        return;
      default: // subscribed, unsubscribed, pong, heartbeat
    }
  }

  #apply(m) {
    if (!this.wanted.has(m.symbol)) return; // unsubscribed meanwhile
    const old = this.records.get(m.symbol);
    let fields;
    if (m.type === 'snapshot') {
      // With one server, a snapshot replaces the record, whatever its seq:
      // after a server restart seqs start again at 1. In a cluster a seq
      // means the same on every node, so one older than the record's comes
      // from a node that lags behind the one left: keep the newer record
      // (the session's next update brings every field changed since).
      if (this.bases.length > 1 && old && m.seq < old.seq) return;
      fields = { ...m.fields };
    } else {
      if (old && m.seq <= old.seq) return; // stale: already have newer
      fields = { ...old?.fields, ...m.fields };
    }
    const changed = [];
    for (const k of new Set([...Object.keys(fields), ...Object.keys(old?.fields ?? {})])) {
      if (fields[k] !== old?.fields[k]) changed.push(k);
    }
    const rec = { symbol: m.symbol, seq: m.seq, ts: m.ts, fields, delayed: !!m.delayed };
    this.records.set(m.symbol, rec);
    let latency;
    if (m.type === 'update' && m.ts && !m.delayed) {
      latency = (nowMicros() - m.ts) / 1000;
      this.latency.last = latency;
      this.latency.avg = Number.isNaN(this.latency.avg) ? latency : this.latency.avg * 0.9 + latency * 0.1;
    }
    if (!changed.length) return;
    const ev = { ...rec, changed, type: m.type, latency };
    this.#emit('change', ev);
    for (const fn of this.bySymbol.get(m.symbol) ?? []) {
      try {
        fn(ev);
      } catch (err) {
        console.error('tickerd: listener failed', err);
      }
    }
  }

  #refused(m) {
    if (m.symbol && this.wanted.has(m.symbol)) {
      // Refused or no longer entitled: asking again would get the same.
      this.wanted.delete(m.symbol);
      this.sent.delete(m.symbol);
      this.records.delete(m.symbol);
    }
    this.#emit('error', { code: m.code, symbol: m.symbol, message: m.message });
  }

  #closeMessage(conn, m) {
    if (FATAL.has(m.code)) {
      this.#fatal(m.code, m.message);
      return;
    }
    if (m.code === 'replaced') {
      // Another connection took the session over: start a new one.
      this.session = this.resume = '';
    }
    // max_age, shutdown, slow_consumer: reconnect at once and resume, unless
    // the connection was too young for that to help. Only a node that shuts
    // down sends its clients to another.
    const young = Date.now() - conn.opened < 1000;
    this.#lost(conn, `closed by server: ${m.code}`, !young, m.code !== 'shutdown');
  }

  #fatal(code, message) {
    this.#stop();
    this.#emit('error', { code, message });
    this.#setState('closed', '', `${code}: ${message}`);
  }

  // lost handles the end of conn: a connection that never worked makes way
  // for the next transport; one that worked is reopened after a backoff
  // (at once when now is set).
  #lost(conn, why, now = false, stay = false) {
    this.conn = null;
    clearTimeout(conn.deadline);
    conn.stop();
    if (!conn.ready && this.index + 1 < this.transports.length) {
      this.index++;
      this.reason = `${conn.name}: ${why}`;
      this.#open();
      return;
    }
    if (!conn.ready) this.index = 0; // nothing worked: the best first next time
    if (this.bases.length > 1 && !stay) {
      // Another node of the cluster: the session stays behind (a new one
      // starts with snapshots; seq means the same on every node). Once
      // per round of the nodes, the backoff applies.
      this.node = (this.node + 1) % this.bases.length;
      this.base = this.bases[this.node];
      this.session = this.resume = '';
      this.count = 0;
      this.index = 0;
      if (this.node !== 0) {
        this.reason = `${conn.name}: ${why}`;
        this.#setState('reconnecting', conn.name, this.reason, 0);
        this.timer = setTimeout(() => this.#open(), Math.round(Math.random() * 100));
        return;
      }
    }
    const ceiling = Math.min(this.opts.backoffMax, this.opts.backoffMin * 2 ** this.failures);
    const delay = now ? 0 : Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    if (!now) this.failures++;
    this.reason = `${conn.name}: ${why}`;
    this.#setState(this.everOpen ? 'reconnecting' : 'connecting', conn.name, this.reason, delay);
    this.timer = setTimeout(() => this.#open(), delay);
  }

  #stop() {
    clearTimeout(this.timer);
    this.timer = 0;
    const conn = this.conn;
    this.conn = null;
    if (conn) {
      clearTimeout(conn.deadline);
      conn.stop();
    }
  }

  // Subscriptions.

  #schedule() {
    if (this.pending) return;
    this.pending = true;
    queueMicrotask(() => {
      this.pending = false;
      this.#reconcile();
    });
  }

  // groups returns the wanted symbols the server lacks (or holds with
  // other options), by options key.
  #groups(held) {
    const groups = new Map();
    for (const [sym, key] of this.wanted) {
      if (held.get(sym) === key) continue;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(sym);
    }
    return groups;
  }

  // reconcile sends the ops that make the server session hold what the
  // page wants.
  #reconcile() {
    const conn = this.conn;
    if (!conn?.send || !(conn.name === 'ws' || conn.sessionReady)) return;
    const drop = [...this.sent.keys()].filter((s) => !this.wanted.has(s));
    if (drop.length) {
      for (const s of drop) this.sent.delete(s);
      conn.send({ op: 'unsubscribe', id: ++this.opId, symbols: drop });
    }
    for (const [key, symbols] of this.#groups(this.sent)) {
      const { fields, maxHz } = this.keys.get(key);
      const op = { op: 'subscribe', id: ++this.opId, symbols };
      if (fields.length) op.fields = fields;
      if (maxHz) op.maxHz = maxHz;
      for (const s of symbols) this.sent.set(s, key);
      conn.send(op);
    }
  }

  // _postOp sends an op of an SSE or long-poll session; the reply holds its
  // acks and errors. Ops go one at a time, in order.
  _postOp(conn, hooks, op) {
    conn.chain = (conn.chain ?? Promise.resolve()).then(async () => {
      if (this.conn !== conn) return;
      const [u, init] = this._authed(this._url(`v1/sessions/${encodeURIComponent(this.session)}`), {
        method: 'POST',
        body: JSON.stringify(op),
      });
      try {
        const r = await fetch(u, init);
        if (r.status === 401) return hooks.fatal('unauthorized', 'credential refused');
        if (!r.ok) return hooks.lost(`op refused: HTTP ${r.status}`);
        hooks.reply(await r.json());
      } catch (err) {
        hooks.lost(`op failed: ${err.message}`);
      }
    });
  }
}

// Transports. Each is called with the client as this, and a conn to fill
// in: send(op) once ops can go, stop() to end it for good.

function openWS(conn, hooks) {
  const u = this._url('v1/ws');
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(u);
  let silence = 0;
  conn.watch = () => {
    clearTimeout(silence);
    silence = setTimeout(hooks.lost, this.opts.silenceTimeout, 'silent too long');
  };
  conn.stop = () => {
    clearTimeout(silence);
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    ws.close();
  };
  ws.onopen = () => {
    if (this.token) ws.send(JSON.stringify({ op: 'auth', id: ++this.opId, token: this.token }));
    ws.send(JSON.stringify({ op: 'ping', id: ++this.opId })); // proves the path both ways
    conn.send = (op) => ws.send(JSON.stringify(op));
    // A WebSocket session starts empty and cannot be resumed.
    this.sent = new Map();
    this.session = this.resume = '';
    hooks.sendable();
  };
  ws.onmessage = (e) => hooks.data(e.data);
  ws.onclose = (e) => hooks.lost(e.reason ? `closed: ${e.reason}` : `closed (${e.code})`);
}

function openSSE(conn, hooks) {
  const q = this._query(conn);
  if (this.token) q.set('token', this.token);
  const es = new EventSource(this._url('v1/sse', q));
  conn.stop = () => {
    es.onmessage = es.onerror = null;
    es.close();
  };
  conn.send = (op) => this._postOp(conn, hooks, op);
  es.onmessage = (e) => hooks.data(e.data);
  es.onerror = () => {
    if (es.readyState === EventSource.CONNECTING && conn.live) {
      // A stream that worked dropped: EventSource reconnects by itself
      // (after the server's retry: 1000) and resumes with Last-Event-ID.
      hooks.stalled('stream dropped');
      return;
    }
    // Refused, or the retry failed too: reopen under the client's backoff,
    // with the resume token.
    hooks.lost('stream failed');
  };
}

function openPoll(conn, hooks) {
  let stopped = false;
  let abort = new AbortController();
  conn.stop = () => {
    stopped = true;
    abort.abort();
  };
  conn.send = (op) => this._postOp(conn, hooks, op);
  const loop = async () => {
    let first = this._url('v1/poll', this._query(conn));
    while (!stopped) {
      let u = first;
      if (!u) u = this._url('v1/poll', new URLSearchParams({ session: this.session, wait: String(this.opts.pollWait) }));
      const [url, init] = this._authed(u, { cache: 'no-store' });
      abort = new AbortController();
      const t = setTimeout(() => abort.abort(), (this.opts.pollWait + 15) * 1000);
      try {
        const r = await fetch(url, { ...init, signal: abort.signal });
        if (r.status === 401) return hooks.fatal('unauthorized', 'credential refused');
        if (r.status === 404) return hooks.lost('session expired');
        if (!r.ok) return hooks.lost(`HTTP ${r.status}`);
        const body = await r.json();
        if (stopped) return;
        first = null;
        hooks.data(body.messages ?? []);
      } catch (err) {
        if (!stopped) hooks.lost(`poll failed: ${err.message}`);
        return;
      } finally {
        clearTimeout(t);
      }
    }
  };
  loop();
}
