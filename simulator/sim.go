package simulator

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/shopspring/decimal"

	"tickerd/feed"
)

// Defaults and limits of Config.
const (
	DefaultSymbols = 200
	DefaultRate    = 2000
	DefaultSeed    = 1
	MaxSymbols     = 100_000
	MaxRate        = 10_000_000
)

// ErrConfig is wrapped by every error New returns for a bad Config.
var ErrConfig = errors.New("simulator: bad config")

// Config describes a simulated feed. The feed New builds from it is a pure
// function of the Config (with defaults applied).
type Config struct {
	// Symbols is the number of simulated symbols, 1 to 100,000.
	// Zero means 200.
	Symbols int
	// Rate is the total number of updates per second across all symbols
	// (initial records not counted), above 0 and at most 10,000,000.
	// Zero means 2000.
	Rate float64
	// Seed drives every random choice of prices, sizes and timing; symbol
	// names do not depend on it. Zero means 1.
	Seed int64
	// Scenario shapes the feed beyond the steady random walk: one of
	// Scenarios (see scenario.go for each one's timeline). Empty means
	// "steady". "halt" needs at least 2 symbols.
	Scenario string
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Symbols == 0 {
		c.Symbols = DefaultSymbols
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Seed == 0 {
		c.Seed = DefaultSeed
	}
	return c
}

func (c Config) validate() error {
	if c.Symbols < 1 || c.Symbols > MaxSymbols {
		return fmt.Errorf("%w: symbols %d out of range 1..%d", ErrConfig, c.Symbols, MaxSymbols)
	}
	if !(c.Rate > 0 && c.Rate <= MaxRate) { // also rejects NaN
		return fmt.Errorf("%w: rate %v out of range (0, %d] updates/s", ErrConfig, c.Rate, MaxRate)
	}
	if c.Scenario == ScenarioHalt && c.Symbols < 2 {
		return fmt.Errorf("%w: scenario %s needs at least 2 symbols", ErrConfig, c.Scenario)
	}
	return nil
}

// Prices are integer counts of 0.0001 ("units"); the tick size is 100 units
// (0.01) at or above 1.00 and 1 unit below.
const (
	priceExp    = -4
	unitsPerOne = 10_000
	coarseTick  = 100
	pctExp      = -2
)

// The shape of the simulated market.
const (
	quoteShare   = 0.7                 // share of ticks that are quote changes; the rest are trades
	tradingYear  = 252 * 6.5 * 60 * 60 // seconds of trading in a year, for annualised volatility
	maxTickSigma = 0.05                // cap on one tick's log-return deviation at very low rates
	popularity   = 0.8                 // Zipf exponent of how often each symbol ticks
	pennyShare   = 0.03                // share of generated symbols priced below 1.00
	minVol       = 0.15                // annualised volatility, drawn per symbol in [minVol, maxVol)
	maxVol       = 0.80
	prevCloseDev = 0.015              // relative deviation of prevClose from the start price
	oddLotPrice  = 500 * unitsPerOne  // at or above this start price a symbol trades in lots of 1
	maxQuoteLots = 200                // cap on a size, in lots of 100
	minPenny     = 0.05 * unitsPerOne // start price ranges, in units, drawn log-uniformly
	maxPenny     = 0.99 * unitsPerOne
	minNormal    = 5 * unitsPerOne
	maxNormal    = 1500 * unitsPerOne
	floorLogMid  = math.Ln2 // the latent mid never goes below 2 units
)

// Sim is a deterministic synthetic level-1 feed. It is not safe for
// concurrent use: one goroutine drives it (Run does, while it runs).
type Sim struct {
	cfg    Config
	names  []string
	syms   []symState
	rng    *rand.Rand
	pick   aliasTable
	values valueCache
	scn    scenario
	origin time.Time // the feed's start, for the scenario's timeline; set by Run, Generate or the first Next

	timeMicros int64 // the time field of the last update, and its value
	timeValue  feed.Value
}

// symState is one symbol's simulated market. Prices are in units.
type symState struct {
	name      string
	logMid    float64 // natural log of the latent mid price, in units
	shift     float64 // the scenario's offset to logMid in the quoted price
	sigma     float64 // deviation of one tick's log return
	lot       int64   // sizes are multiples of lot
	maxSpread int     // quoted spread is 1..maxSpread ticks
	bid, ask  int64
	bidSize   int64
	askSize   int64
	last      int64
	lastSize  int64
	volume    int64
	open      int64
	high, low int64
	prevClose int64
}

// New returns a simulator for cfg, or an error wrapping ErrConfig.
func New(cfg Config) (*Sim, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	scn, err := newScenario(cfg.Scenario, cfg.Rate)
	if err != nil {
		return nil, err
	}
	cfg.Scenario = scn.name
	seed := uint64(cfg.Seed)
	s := &Sim{
		scn:    scn,
		cfg:    cfg,
		names:  symbolNames(cfg.Symbols),
		syms:   make([]symState, cfg.Symbols),
		rng:    rand.New(rand.NewPCG(seed, seed^0x5bd1e995)),
		values: newValueCache(cfg.Symbols),
	}
	weights := make([]float64, cfg.Symbols)
	var total float64
	for i := range weights {
		weights[i] = 1 / math.Pow(float64(i+1), popularity)
		total += weights[i]
	}
	s.pick = newAliasTable(weights)
	for i := range s.syms {
		ticksPerSec := cfg.Rate * weights[i] / total
		s.syms[i] = newSymState(s.names[i], i >= len(realTickers), ticksPerSec, rand.New(rand.NewPCG(seed, uint64(i))))
	}
	return s, nil
}

// newSymState draws a symbol's starting market from its own random stream,
// so a symbol starts the same whatever the number of symbols.
func newSymState(name string, mayBePenny bool, ticksPerSec float64, r *rand.Rand) symState {
	lo, hi := float64(minNormal), float64(maxNormal)
	if mayBePenny && r.Float64() < pennyShare {
		lo, hi = minPenny, maxPenny
	}
	logMid := math.Log(lo) + r.Float64()*(math.Log(hi)-math.Log(lo))
	vol := minVol + r.Float64()*(maxVol-minVol)
	st := symState{
		name:      name,
		logMid:    logMid,
		sigma:     min(vol*math.Sqrt(1/ticksPerSec/tradingYear), maxTickSigma),
		lot:       100,
		maxSpread: 1 + r.IntN(5),
	}
	mid := math.Exp(logMid)
	if mid >= oddLotPrice {
		st.lot = 1
	}
	st.prevClose = max(roundToGrid(mid*math.Exp(r.NormFloat64()*prevCloseDev)), 1)
	st.bid, st.ask = quote(mid, 1+r.IntN(st.maxSpread))
	st.bidSize = quoteSize(r, st.lot)
	st.askSize = quoteSize(r, st.lot)
	st.last = st.bid
	if r.IntN(2) == 1 {
		st.last = st.ask
	}
	st.lastSize = tradeSize(r, st.lot)
	st.volume = st.lastSize
	st.open, st.high, st.low = st.last, st.last, st.last
	return st
}

// Config returns the configuration in force, defaults applied.
func (s *Sim) Config() Config { return s.cfg }

// Symbols returns the names of the simulated symbols, index i naming the
// symbol that Initial(i, ...) fills. The caller owns the returned slice.
func (s *Sim) Symbols() []string { return append([]string(nil), s.names...) }

// putQuote puts st's quote, last trade and volume into u.
func (s *Sim) putQuote(u *feed.Update, st *symState) {
	u.Put(feed.Bid, s.price(st.bid))
	u.Put(feed.BidSize, s.size(st.bidSize))
	u.Put(feed.Ask, s.price(st.ask))
	u.Put(feed.AskSize, s.size(st.askSize))
	u.Put(feed.Last, s.price(st.last))
	u.Put(feed.LastSize, s.size(st.lastSize))
	u.Put(feed.Volume, feed.DecimalValue(decimal.New(st.volume, 0)))
}

// Initial fills u with the complete current record of symbol i (every
// level-1 field, time = now, status trading). Called before any Next it is
// the symbol's first record; it consumes no randomness.
func (s *Sim) Initial(i int, u *feed.Update, now time.Time) {
	st := &s.syms[i]
	u.Reset()
	u.Symbol = st.name
	s.putQuote(u, st)
	u.Put(feed.Open, s.price(st.open))
	u.Put(feed.High, s.price(st.high))
	u.Put(feed.Low, s.price(st.low))
	u.Put(feed.PrevClose, s.price(st.prevClose))
	s.putChange(u, st)
	u.Put(feed.Time, s.timeOf(now))
	u.Put(feed.Status, feed.StatusValue(feed.StatusTrading))
}

// Next fills u with the next random tick: a popular symbol more often than
// others, 70% quote changes (bid, ask, their sizes: only those that moved)
// and 30% trades at the bid or the ask (last, lastSize, volume, and high,
// low, change, changePct when they move), always with time = now; or with
// the scenario's event due now. The sequence of symbols, fields and values
// other than time is a pure function of the Config and of the times Next
// is called with, counted from the feed's start (the first call's now,
// unless Run or Generate set it).
func (s *Sim) Next(u *feed.Update, now time.Time) {
	if s.origin.IsZero() {
		s.origin = now
	}
	e := now.Sub(s.origin)
	u.Reset()
	if s.scn.event(s, u, e, now) {
		return
	}
	i := s.pick.draw(s.rng)
	for s.scn.skips(i) {
		i = s.pick.draw(s.rng)
	}
	st := &s.syms[i]
	u.Symbol = st.name
	st.logMid = max(st.logMid+st.sigma*s.rng.NormFloat64(), floorLogMid)
	st.shift = s.scn.shift(i, e)
	if s.rng.Float64() < quoteShare {
		s.nextQuote(u, st)
	} else {
		s.nextTrade(u, st)
	}
	u.Put(feed.Time, s.timeOf(now))
}

func (s *Sim) nextQuote(u *feed.Update, st *symState) {
	bid, ask := quote(math.Exp(st.logMid+st.shift), 1+s.rng.IntN(st.maxSpread))
	bidSize, askSize := st.bidSize, st.askSize
	if bid != st.bid || s.rng.IntN(2) == 0 {
		bidSize = quoteSize(s.rng, st.lot)
	}
	if ask != st.ask || s.rng.IntN(2) == 0 {
		askSize = quoteSize(s.rng, st.lot)
	}
	if bid == st.bid && ask == st.ask && bidSize == st.bidSize && askSize == st.askSize {
		// Something must change: one more or one less lot on the bid.
		if bidSize > st.lot && s.rng.IntN(2) == 0 {
			bidSize -= st.lot
		} else {
			bidSize += st.lot
		}
	}
	if bid != st.bid {
		st.bid = bid
		u.Put(feed.Bid, s.price(bid))
	}
	if bidSize != st.bidSize {
		st.bidSize = bidSize
		u.Put(feed.BidSize, s.size(bidSize))
	}
	if ask != st.ask {
		st.ask = ask
		u.Put(feed.Ask, s.price(ask))
	}
	if askSize != st.askSize {
		st.askSize = askSize
		u.Put(feed.AskSize, s.size(askSize))
	}
}

func (s *Sim) nextTrade(u *feed.Update, st *symState) {
	price := st.bid
	if s.rng.IntN(2) == 1 {
		price = st.ask
	}
	size := tradeSize(s.rng, st.lot)
	st.lastSize = size
	st.volume += size
	u.Put(feed.LastSize, s.size(size))
	u.Put(feed.Volume, feed.DecimalValue(decimal.New(st.volume, 0)))
	if price == st.last {
		u.Put(feed.Last, s.price(price)) // a trade repeats its price
		return
	}
	st.last = price
	u.Put(feed.Last, s.price(price))
	if price > st.high {
		st.high = price
		u.Put(feed.High, s.price(price))
	}
	if price < st.low {
		st.low = price
		u.Put(feed.Low, s.price(price))
	}
	s.putChange(u, st)
}

// putChange puts change = last − prevClose and changePct =
// 100·change/prevClose rounded half away from zero to 2 places.
func (s *Sim) putChange(u *feed.Update, st *symState) {
	change := st.last - st.prevClose
	u.Put(feed.Change, s.values.get(change, priceExp))
	u.Put(feed.ChangePct, s.values.get(divRound(change*10_000, st.prevClose), pctExp))
}

// divRound returns n/d rounded half away from zero; d > 0.
func divRound(n, d int64) int64 {
	q, r := n/d, n%d
	if r < 0 {
		r = -r
	}
	if 2*r >= d {
		if n < 0 {
			q--
		} else {
			q++
		}
	}
	return q
}

func (s *Sim) price(units int64) feed.Value { return s.values.get(units, priceExp) }
func (s *Sim) size(n int64) feed.Value      { return s.values.get(n, 0) }

// timeOf returns the time field for now, reusing the last one built when
// now is in the same microsecond.
func (s *Sim) timeOf(now time.Time) feed.Value {
	if us := now.UnixMicro(); us != s.timeMicros || s.timeValue.IsZero() {
		s.timeMicros, s.timeValue = us, feed.TimeValue(now)
	}
	return s.timeValue
}

// tickAt returns the tick size, in units, of a price in units.
func tickAt(units int64) int64 {
	if units >= unitsPerOne {
		return coarseTick
	}
	return 1
}

// roundToGrid returns the grid price nearest to x units (at least 1).
func roundToGrid(x float64) int64 {
	n := int64(math.Round(x))
	if n >= unitsPerOne {
		n = int64(math.Round(x/coarseTick)) * coarseTick
	}
	return n
}

// floorToGrid returns the largest grid price at or below x units.
func floorToGrid(x float64) int64 {
	n := int64(math.Floor(x))
	if n >= unitsPerOne {
		n = int64(math.Floor(x/coarseTick)) * coarseTick
	}
	return n
}

// ceilToGrid returns the smallest grid price at or above n units.
func ceilToGrid(n int64) int64 {
	if n > unitsPerOne && n%coarseTick != 0 {
		n += coarseTick - n%coarseTick
	}
	return n
}

// quote returns a bid and an ask on the tick grid about spread ticks apart
// around mid (in units), with 0 < bid < ask.
func quote(mid float64, spread int) (bid, ask int64) {
	tick := tickAt(int64(mid))
	bid = max(floorToGrid(mid-float64(int64(spread)*tick)/2), 1)
	ask = ceilToGrid(bid + int64(spread)*tickAt(bid))
	return bid, ask
}

// quoteSize draws a quoted size: a whole number of lots, mostly a few.
func quoteSize(r *rand.Rand, lot int64) int64 {
	mean := 8.0
	if lot == 1 {
		mean = 40
	}
	return lot * min(1+int64(r.ExpFloat64()*mean), maxQuoteLots*100/lot)
}

// tradeSize draws a trade size: a whole number of lots, mostly one.
func tradeSize(r *rand.Rand, lot int64) int64 {
	mean := 1.5
	if lot == 1 {
		mean = 25
	}
	return lot * min(1+int64(r.ExpFloat64()*mean), maxQuoteLots*100/lot)
}
