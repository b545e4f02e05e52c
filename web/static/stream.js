// QuoteStream keeps one live subscription to tickerd: WebSocket first,
// Server-Sent Events when WebSocket cannot connect, and reconnection with
// exponential backoff after any disconnect. Each connection subscribes
// afresh, so the server starts it with snapshots.

const BACKOFF_MIN = 500; // ms
const BACKOFF_MAX = 30000; // ms
// A WebSocket that hears nothing (not even a heartbeat, sent every 15 s
// by default) for this long is taken for dead.
const SILENCE_LIMIT = 45000; // ms

export class QuoteStream {
  // symbols, fields: what to subscribe; maxHz: per-symbol rate (0 = the
  // server's default); transport: 'sse' to skip WebSocket. onMessage gets
  // every server message, one at a time; onState gets (state, detail)
  // with state one of connecting, live, reconnecting.
  constructor({ symbols, fields, maxHz = 0, transport = '', onMessage, onState }) {
    Object.assign(this, { symbols, fields, maxHz, onMessage, onState });
    this.conn = null; // the current WebSocket or EventSource
    this.wsAllowed = transport !== 'sse' && 'WebSocket' in window;
    this.useWS = this.wsAllowed;
    this.failures = 0; // connection attempts since the last good one
    this.timer = 0;
    this.watchdog = 0;
    this.opId = 0;
    this.closeCode = ''; // code of the server's close message, if one came
  }

  start() {
    this.connect();
  }

  // stop closes the connection and cancels any pending reconnect.
  stop() {
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    const conn = this.conn;
    this.conn = null;
    conn?.close();
  }

  connect() {
    this.timer = 0;
    this.onState('connecting', this.useWS ? 'WebSocket' : 'SSE');
    if (this.useWS) this.openWS();
    else this.openSSE();
  }

  openWS() {
    const url = new URL('v1/ws', location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(url);
    this.conn = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      const op = { op: 'subscribe', id: ++this.opId, symbols: this.symbols, fields: this.fields };
      if (this.maxHz) op.maxHz = this.maxHz;
      ws.send(JSON.stringify(op));
      this.arm(ws);
      this.onState('live', 'WebSocket');
    };
    ws.onmessage = (e) => {
      this.arm(ws);
      this.receive(e.data);
    };
    ws.onclose = (e) => {
      if (this.conn !== ws) return;
      this.conn = null;
      clearTimeout(this.watchdog);
      if (!opened) {
        // No WebSocket at all (a proxy may block it): try SSE at once.
        this.useWS = false;
        this.connect();
        return;
      }
      this.retry(e.reason ? `closed: ${e.reason}` : `closed (${e.code})`);
    };
  }

  openSSE() {
    const q = new URLSearchParams({ symbols: this.symbols.join(','), fields: this.fields.join(',') });
    if (this.maxHz) q.set('maxHz', String(this.maxHz));
    const es = new EventSource(new URL(`v1/sse?${q}`, location.href));
    this.conn = es;
    let opened = false;
    es.onopen = () => {
      opened = true;
      this.onState('live', 'SSE');
    };
    es.onmessage = (e) => this.receive(e.data);
    es.onerror = () => {
      // EventSource would retry on its own; reconnect under our backoff
      // instead, so both transports behave alike.
      es.close();
      if (this.conn !== es) return;
      this.conn = null;
      // If SSE never connected either, the server is likely down rather
      // than WebSocket blocked: try WebSocket again next time.
      if (!opened) this.useWS = this.wsAllowed;
      this.retry('disconnected');
    };
  }

  // arm restarts the silence watchdog of a WebSocket. A dead connection
  // may take long to report its close, so it is dropped at once.
  arm(ws) {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      if (this.conn !== ws) return;
      this.conn = null;
      ws.close();
      this.retry('no data');
    }, SILENCE_LIMIT);
  }

  receive(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      console.warn('tickerd: undecodable message', data);
      return;
    }
    if (this.failures) this.failures = 0; // data flows: the connection is good
    for (const m of Array.isArray(msg) ? msg : [msg]) {
      if (m.type === 'close') this.closeCode = m.code; // the stream ends next
      this.onMessage(m);
    }
  }

  retry(why) {
    if (this.closeCode) why = `closed: ${this.closeCode}`;
    this.closeCode = '';
    const ceiling = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** this.failures);
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2); // jitter
    this.failures++;
    this.onState('reconnecting', `${why}; retry in ${(delay / 1000).toFixed(1)} s`);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
