//go:build !race

package bench

// buildFlags for the binaries of the end-to-end test.
var buildFlags []string
