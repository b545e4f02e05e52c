//go:build race

package bench

// buildFlags for the binaries of the end-to-end test: race-enabled like
// the test itself, which reuses its compiled packages and checks tickerd
// for races under load too.
var buildFlags = []string{"-race"}
