package clienttest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"tickerd/stream"
)

// Everything works from the keyboard: / focuses the add box, Enter adds,
// Escape goes to the grid, arrows move the selection, Alt+arrows reorder,
// Enter opens the detail panel, Escape closes it, Delete removes a row.
func TestDashboardKeyboard(t *testing.T) {
	s := newServer(t, stream.Config{})
	s.ingest(1, "AAA", "BBB", "CCC")
	p := newPage(t, s.base+"/?symbols=AAA,BBB")
	waitLive(t, p)
	selected := func() string {
		var sym string
		p.eval(`document.querySelector('#grid tbody tr.sel')?.dataset.symbol ?? ''`, &sym)
		return sym
	}
	focused := func() string {
		var f string
		p.eval(`document.activeElement.id || document.activeElement.dataset?.symbol || document.activeElement.tagName`, &f)
		return f
	}
	p.do(chromedp.KeyEvent("/"))
	if f := focused(); f != "add" {
		t.Fatalf("after /, focus on %q, want the add box", f)
	}
	p.do(chromedp.KeyEvent("ccc" + kb.Enter))
	waitFor(t, 5*time.Second, "CCC added", func() string {
		if o := p.order(); !slices.Equal(o, []string{"AAA", "BBB", "CCC"}) {
			return fmt.Sprintf("rows %v", o)
		}
		return ""
	})
	p.do(chromedp.KeyEvent(kb.Escape))
	if f, sel := focused(), selected(); f != "CCC" || sel != "CCC" {
		t.Fatalf("after Escape, focus %q selection %q, want the added row", f, sel)
	}
	p.do(chromedp.KeyEvent(kb.ArrowUp))
	if sel := selected(); sel != "BBB" {
		t.Fatalf("ArrowUp: selection %q, want BBB", sel)
	}
	p.do(chromedp.KeyEvent(kb.ArrowUp, chromedp.KeyModifiers(chromedp.ModifierAlt)))
	if o := p.order(); !slices.Equal(o, []string{"BBB", "AAA", "CCC"}) {
		t.Fatalf("Alt+ArrowUp: rows %v, want BBB moved up", o)
	}
	p.do(chromedp.KeyEvent(kb.ArrowDown))
	if sel := selected(); sel != "AAA" {
		t.Fatalf("ArrowDown: selection %q, want AAA", sel)
	}
	p.do(chromedp.KeyEvent(kb.Enter))
	waitFor(t, 5*time.Second, "detail open", func() string {
		var d struct {
			Hidden      bool
			Title, Bid  string
			Ticks, Dpts int
		}
		p.eval(`({hidden: document.getElementById('detail').hidden, title: document.querySelector('.d-title').textContent,
			bid: document.querySelector('.d-fields dd[data-field=bid]').textContent,
			ticks: document.querySelectorAll('.d-ticks tbody tr').length})`, &d)
		want := s.snapshot([]string{"AAA"})["AAA"]["bid"]
		if d.Hidden || d.Title != "AAA" || !sameDecimal(d.Bid, want) || d.Ticks == 0 {
			return fmt.Sprintf("detail %+v, want AAA with bid %s and ticks", d, want)
		}
		return ""
	})
	p.do(chromedp.KeyEvent(kb.Escape))
	var hidden bool
	if p.eval(`document.getElementById('detail').hidden`, &hidden); !hidden {
		t.Fatal("Escape left the detail panel open")
	}
	if f := focused(); f != "AAA" {
		t.Errorf("after closing the panel focus is on %q, want the AAA row", f)
	}
	p.do(chromedp.KeyEvent(kb.Delete))
	if o := p.order(); !slices.Equal(o, []string{"BBB", "CCC"}) {
		t.Fatalf("Delete: rows %v, want AAA gone", o)
	}
	if sel := selected(); sel != "CCC" {
		t.Errorf("after Delete the selection is %q, want the next row", sel)
	}
}

// layoutFeed posts a realistic record per symbol: one halted, one stale.
func layoutFeed(s *server, syms []string, round int) {
	var lines []string
	for i, sym := range syms {
		base := 20 + 37*i%400
		px := float64(base) + float64((round*7+i*3)%11)/10
		chg := float64((i*13+round*5)%21-10) / 10
		f := map[string]string{
			"bid": fmt.Sprintf("%.2f", px-0.01), "ask": fmt.Sprintf("%.2f", px+0.01), "last": fmt.Sprintf("%.2f", px),
			"bidSize": fmt.Sprint(100 * (i + 1)), "askSize": fmt.Sprint(200 + i), "lastSize": "100",
			"volume": fmt.Sprint(120000*(i+1) + round*1300), "change": fmt.Sprintf("%.2f", chg),
			"changePct": fmt.Sprintf("%.2f", chg/float64(base)*100), "prevClose": fmt.Sprintf("%.2f", float64(base)-chg),
			"open": fmt.Sprintf("%.2f", float64(base)), "high": fmt.Sprintf("%.2f", px+0.6), "low": fmt.Sprintf("%.2f", px-0.7),
			"time": time.Now().UTC().Format(time.RFC3339Nano), "status": "trading",
		}
		switch i {
		case 2:
			f["status"] = "halted"
		case 4:
			f["status"] = "stale"
		}
		lines = append(lines, quote(sym, f))
	}
	s.ingestLines(lines...)
}

// Screenshots at 1280x720 in both themes and at phone width (saved in
// artifacts/screenshots): the theme key switches the colours, halted and
// stale rows are marked, and a phone-width page does not scroll sideways.
func TestDashboardThemesAndLayouts(t *testing.T) {
	s := newServer(t, stream.Config{})
	syms := strings.Fields("AAPL MSFT NVDA AMZN GOOGL META TSLA JPM V XOM UNH AVGO LLY MA HD COST PG JNJ")
	layoutFeed(s, syms, 1)
	p := newPage(t, s.base+"/?theme=dark&symbols="+strings.Join(syms, ","))
	p.do(chromedp.EmulateViewport(1280, 720))
	waitLive(t, p)
	// Feed a few seconds so that the sparklines have points.
	for round := 2; round <= 4; round++ {
		time.Sleep(1100 * time.Millisecond)
		layoutFeed(s, syms, round)
	}
	waitFor(t, 10*time.Second, "marks", func() string {
		if r := p.row("NVDA"); r["badge"] != "halted" || r["status"] != "halted" {
			return fmt.Sprintf("NVDA %v, want halted", r)
		}
		if r := p.row("GOOGL"); r["badge"] != "stale" || r["status"] != "stale" {
			return fmt.Sprintf("GOOGL %v, want stale", r)
		}
		return ""
	})
	bg := func() string {
		var c string
		p.eval(`document.documentElement.dataset.theme + ' ' + getComputedStyle(document.body).backgroundColor`, &c)
		return c
	}
	dark := bg()
	if !strings.HasPrefix(dark, "dark ") {
		t.Fatalf("theme %q, want dark from ?theme=dark", dark)
	}
	p.do(chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.ArrowDown))
	p.shot("dashboard-1280-dark")
	p.do(chromedp.KeyEvent("t"))
	light := bg()
	if !strings.HasPrefix(light, "light ") || light[6:] == dark[5:] {
		t.Fatalf("after t: %q (dark was %q), want the light theme's colours", light, dark)
	}
	var saved string
	p.eval(`localStorage.getItem('tickerd.theme')`, &saved)
	if saved != "light" {
		t.Errorf("theme saved as %q, want light", saved)
	}
	time.Sleep(300 * time.Millisecond) // the sparklines repaint in the next frames
	p.shot("dashboard-1280-light")
	p.do(chromedp.KeyEvent(kb.Enter))
	time.Sleep(600 * time.Millisecond)
	p.shot("dashboard-1280-light-detail")
	p.do(chromedp.KeyEvent(kb.Escape), chromedp.KeyEvent("t"))

	p.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	time.Sleep(300 * time.Millisecond)
	var overflow struct{ Scroll, Client int }
	p.eval(`({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth})`, &overflow)
	if overflow.Scroll > overflow.Client {
		t.Errorf("phone width: the page is %d px wide in a %d px viewport", overflow.Scroll, overflow.Client)
	}
	var gridFits bool
	p.eval(`(() => { const w = document.querySelector('.gridwrap'); return w.scrollWidth <= w.clientWidth; })()`, &gridFits)
	if !gridFits {
		t.Errorf("phone width: the grid scrolls sideways; the narrow layout should drop columns")
	}
	p.shot("dashboard-390-dark")
	p.do(chromedp.KeyEvent(kb.Enter))
	time.Sleep(600 * time.Millisecond)
	p.shot("dashboard-390-dark-detail")
	if probs := p.problems(); len(probs) > 0 {
		t.Errorf("console problems:\n%s", strings.Join(probs, "\n"))
	}
}

// Named watchlists: + names a new one in place, [ and ] switch, ?list=
// opens one, F2 renames it, − deletes it on a second press; all of it is
// kept in localStorage.
func TestDashboardWatchlists(t *testing.T) {
	s := newServer(t, stream.Config{})
	s.ingest(1, "AAA", "BBB", "CCC")
	p := newPage(t, s.base+"/?symbols=AAA,BBB")
	waitLive(t, p)
	tabs := func(p *page) (names []string, active string) {
		var v struct {
			Names  []string
			Active string
		}
		p.eval(`({names: [...document.querySelectorAll('#lists button.tab:not(.new):not(.del)')].map((b) => b.textContent),
			active: document.querySelector('#lists .tab[aria-pressed=true]')?.textContent ?? ''})`, &v)
		return v.Names, v.Active
	}
	wantRows := func(p *page, what string, rows ...string) {
		t.Helper()
		waitFor(t, 5*time.Second, what, func() string {
			if o := p.order(); !slices.Equal(o, rows) {
				return fmt.Sprintf("rows %v, want %v", o, rows)
			}
			return ""
		})
	}
	if names, active := tabs(p); !slices.Equal(names, []string{"Shared"}) || active != "Shared" {
		t.Fatalf("tabs %v (active %q), want the shared list", names, active)
	}
	p.do(chromedp.Click(chromedp.CSS("#lists .tab.new")), chromedp.KeyEvent("Tech"+kb.Enter))
	if names, active := tabs(p); !slices.Equal(names, []string{"Shared", "Tech"}) || active != "Tech" {
		t.Fatalf("after + Tech: tabs %v (active %q)", names, active)
	}
	wantRows(p, "new list empty")
	if p.text("#empty") == "" {
		t.Error("an empty list shows no hint")
	}
	p.do(chromedp.KeyEvent("ccc" + kb.Enter)) // the add box has the focus
	wantRows(p, "CCC in Tech", "CCC")
	p.do(chromedp.KeyEvent(kb.Escape), chromedp.KeyEvent("["))
	wantRows(p, "[ back to Shared", "AAA", "BBB")
	p.do(chromedp.KeyEvent("]"))
	wantRows(p, "] to Tech", "CCC")

	p2 := newPage(t, s.base+"/?list=Tech")
	waitLive(t, p2)
	wantRows(p2, "?list=Tech", "CCC")
	p2.eval(`document.querySelector('#lists .tab[aria-pressed=true]').focus(), true`, nil)
	p2.do(chromedp.KeyEvent(kb.F2), chromedp.KeyEvent(strings.Repeat(kb.Backspace, 4)+"Growth"+kb.Enter))
	if names, active := tabs(p2); !slices.Equal(names, []string{"Shared", "Growth"}) || active != "Growth" {
		t.Fatalf("after F2 Growth: tabs %v (active %q)", names, active)
	}
	p2.do(chromedp.Click(chromedp.CSS("#lists .tab.del")))
	if names, _ := tabs(p2); len(names) != 2 {
		t.Fatalf("one press of − deleted the list: tabs %v", names)
	}
	p2.do(chromedp.Click(chromedp.CSS("#lists .tab.del")))
	if names, active := tabs(p2); !slices.Equal(names, []string{"Shared"}) || active != "Shared" {
		t.Fatalf("after deleting: tabs %v (active %q)", names, active)
	}
	wantRows(p2, "back on Shared", "AAA", "BBB")
	var saved string
	p2.eval(`localStorage.getItem('tickerd.watchlists.v1')`, &saved)
	if saved != `{"active":"Shared","lists":[{"name":"Shared","symbols":["AAA","BBB"]}]}` {
		t.Errorf("localStorage %s", saved)
	}
}

// modulesJS runs the dashboard's pure modules in the page and returns a
// list of failures: the autocomplete index, the bounded history, the
// latency median, the watchlists' storage and the decimal formatting.
const modulesJS = `(async () => {
  const fails = [];
  const check = (what, got, want) => {
    if (JSON.stringify(got) !== JSON.stringify(want)) fails.push(what + ': got ' + JSON.stringify(got) + ', want ' + JSON.stringify(want));
  };
  const { SymbolIndex } = await import('/symbols.js');
  const names = [];
  for (let i = 0; i < 5000; i++) names.push('S' + String(i).padStart(4, '0'));
  names.push('AAPL', 'AAL', 'XAAP', 'AAPL');
  const idx = new SymbolIndex(names);
  check('index size (deduplicated)', idx.size, 5003);
  check('prefix first, then substring', idx.search('aap', 10), ['AAPL', 'XAAP']);
  check('capped', idx.search('S1', 5), ['S1000', 'S1001', 'S1002', 'S1003', 'S1004']);
  check('substring after prefix', idx.search('999', 3), ['S0999', 'S1999', 'S2999']);
  check('has', [idx.has('AAL'), idx.has('AA')], [true, false]);

  const { History, FINE_POINTS, COARSE_POINTS, MAX_TICKS } = await import('/history.js');
  const h = new History();
  const t0 = Date.UTC(2026, 0, 5, 14, 30);
  for (let s = 0; s < 6 * 3600; s += 2) {
    h.price(t0 + s * 1000, 100 + s / 1000);
    h.tick(t0 + s * 1000, { bid: '1', ask: '2' }, ['bid']);
  }
  if (h.fine.times.length > FINE_POINTS + 64) fails.push('fine tier grew to ' + h.fine.times.length);
  if (h.coarse.times.length > COARSE_POINTS + 64) fails.push('coarse tier grew to ' + h.coarse.times.length);
  if (h.ticks.length > 2 * MAX_TICKS) fails.push('ticks grew to ' + h.ticks.length);
  const sp = h.series(96);
  if (sp.prices.length > 96 || sp.times.length !== sp.prices.length) fails.push('series of ' + sp.prices.length + ' points');
  check('series ends at the last price', sp.prices[sp.prices.length - 1], 100 + (6 * 3600 - 2) / 1000);
  check('series reaches back to the start', sp.times[0] <= t0 + 300000, true);
  check('series in time order', sp.times.every((t, i) => i === 0 || t > sp.times[i - 1]), true);
  check('recent ticks newest first', h.recent(2).map((x) => x.t), [t0 + (6 * 3600 - 2) * 1000, t0 + (6 * 3600 - 4) * 1000]);

  const { Stats } = await import('/stats.js');
  const st = new Stats();
  for (let i = 1; i <= 99; i++) st.record(i);
  st.record(undefined);
  st.roll();
  check('p50 of 1..99', st.p50(), 50);
  check('rate counts every change', st.rate(1), 100);
  for (let i = 0; i < 70; i++) { st.record(1000); st.roll(); }
  check('p50 forgets after a minute', st.p50(), 1000);

  const { Watchlists, STORAGE_KEY } = await import('/watchlists.js');
  const mem = new Map();
  const store = { getItem: (k) => mem.get(k) ?? null, setItem: (k, v) => mem.set(k, v) };
  let w = new Watchlists(store);
  check('empty at first', w.empty, true);
  w.put('Main', ['aapl', 'MSFT', 'bad symbol!', 'MSFT']);
  check('put normalizes', w.symbols(), ['AAPL', 'MSFT']);
  check('add returns the new', w.add('msft', 'ibm', '', 'x y'), ['IBM']);
  w.move('IBM', 0);
  check('move', w.symbols(), ['IBM', 'AAPL', 'MSFT']);
  w.remove('AAPL');
  check('create picks a free name', w.create('Main'), 'Main 2');
  w = new Watchlists(store);
  check('reloaded', [w.names(), w.activeName, w.find('Main').symbols], [['Main', 'Main 2'], 'Main 2', ['IBM', 'MSFT']]);
  mem.set(STORAGE_KEY, '{not json');
  check('corrupt storage starts afresh', new Watchlists(store).empty, true);
  const full = { getItem: () => null, setItem: () => { throw new Error('quota'); } };
  const wf = new Watchlists(full);
  wf.put('Main', ['AAPL']);
  check('storage refusing writes', wf.symbols(), ['AAPL']);

  const f = await import('/format.js');
  check('fixed', [f.fixed('189.1'), f.fixed('189'), f.fixed('0.12345')], ['189.10', '189.00', '0.12345']);
  check('grouped', [f.grouped('1234567'), f.grouped('-1234.5')], ['1,234,567', '-1,234.5']);
  check('signed', [f.signed('0.5'), f.signed('-0.5'), f.signed('0.00')], ['+0.5', '-0.5', '0.00']);
  check('cmp', [f.cmp('100.1', '100.09'), f.cmp('-1', '0'), f.cmp('2.50', '2.5'), f.cmp('99.99', '100')], [1, -1, 0, -1]);
  return fails;
})()`

// The dashboard's modules hold their contracts: autocomplete order and
// cap, bounded history, the latency median, watchlist storage, decimals.
func TestDashboardModules(t *testing.T) {
	s := newServer(t, stream.Config{})
	p := newPage(t, s.base+"/?symbols=AAA")
	var fails []string
	p.evalAsync(modulesJS, 30*time.Second, &fails)
	for _, f := range fails {
		t.Error(f)
	}
}
