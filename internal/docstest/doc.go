// Package docstest checks that the examples in docs/ work: it builds the
// Go programs found in docs/protocol.md and runs them, and replays its curl
// examples, against a real tickerd started from this tree.
//
// It holds tests only; nothing imports it. The tests build binaries and
// start processes, so they are skipped with -short.
package docstest
