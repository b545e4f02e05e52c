package simulator

import (
	"math/rand/v2"

	"tickerd/feed"
)

// realTickers are real US equity tickers, roughly by trading activity. The
// simulator names its first symbols after them, so a demo looks familiar;
// their prices are simulated, not real.
var realTickers = [...]string{
	"AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AVGO", "BRK.B", "JPM",
	"LLY", "V", "UNH", "XOM", "MA", "JNJ", "PG", "HD", "COST", "ABBV",
	"MRK", "ORCL", "CVX", "AMD", "NFLX", "CRM", "KO", "PEP", "BAC", "ADBE",
	"WMT", "TMO", "ACN", "MCD", "CSCO", "LIN", "ABT", "INTC", "DIS", "WFC",
	"DHR", "INTU", "VZ", "CMCSA", "QCOM", "TXN", "AMGN", "IBM", "PFE", "NOW",
	"CAT", "UNP", "PM", "GE", "SPGI", "AMAT", "ISRG", "HON", "COP", "BKNG",
	"LOW", "NEE", "RTX", "BA", "GS", "UBER", "ELV", "PLD", "T", "SBUX",
	"MS", "BLK", "DE", "MDT", "LMT", "SYK", "GILD", "TJX", "ADP", "MMC",
	"BMY", "VRTX", "C", "ADI", "LRCX", "SCHW", "CB", "MDLZ", "REGN", "PGR",
	"MU", "CI", "ZTS", "PANW", "SO", "ETN", "BSX", "SNPS", "FI", "KLAC",
	"CDNS", "DUK", "EQIX", "SHW", "ITW", "CME", "MO", "CSX", "ICE", "WM",
	"SLB", "NOC", "CL", "PYPL", "APD", "AON", "TGT", "MCK", "ABNB", "USB",
	"HCA", "FDX", "EOG", "MAR", "ORLY", "EMR", "PSX", "MPC", "GD", "NSC",
	"ROP", "PNC", "MMM", "AZO", "APH", "ECL", "NXPI", "PH", "MCO", "F",
	"GM", "AJG", "TT", "CARR", "WELL", "ADSK", "SRE", "AIG", "MSI", "PCAR",
	"KMB", "TFC", "AFL", "COF", "OXY", "D", "HUM", "PSA", "TRV", "CTAS",
	"EW", "AEP", "MET", "DXCM", "CHTR", "MNST", "KDP", "O", "SPG", "FTNT",
	"STZ", "HLT", "DOW", "IDXX", "PAYX", "ROST", "KMI", "CNC", "YUM", "GIS",
	"ALL", "BK", "LULU", "CPRT", "SYY", "HSY", "KHC", "ODFL", "MRNA", "DLR",
	"CMG", "EXC", "PRU", "AMP", "CTSH", "KVUE", "DD", "FAST", "OTIS", "VLO",
	"XEL", "EA", "DVN", "CSGP", "BIIB", "ED", "HAL", "PLTR", "COIN", "SNOW",
	"SHOP", "SQ", "RIVN", "LCID", "SOFI", "HOOD", "NIO", "BABA", "TSM", "ASML",
}

// nameSeed fixes the generated names: they do not depend on Config.Seed, so
// a symbol keeps its name whatever the seed.
const nameSeed = 0x7469636b657264 // "tickerd"

// symbolNames returns n distinct symbol names: the real tickers first, then
// deterministic random 3- and 4-letter names that are not real tickers.
func symbolNames(n int) []string {
	names := make([]string, 0, n)
	seen := make(map[string]bool, n)
	for _, s := range realTickers {
		if len(names) == n {
			return names
		}
		names = append(names, s)
		seen[s] = true
	}
	rng := rand.New(rand.NewPCG(nameSeed, nameSeed))
	var buf [4]byte
	for len(names) < n {
		l := 3 + rng.IntN(2)
		for i := range l {
			buf[i] = byte('A' + rng.IntN(26))
		}
		s := string(buf[:l])
		if seen[s] || !feed.ValidSymbol(s) {
			continue
		}
		seen[s] = true
		names = append(names, s)
	}
	return names
}
