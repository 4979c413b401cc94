//go:build race

package main

// raceEnabled: the tests run with -race; the edge processes of the
// end-to-end test are built with it too (their races are found, and the
// build shares the cache of the tests' own).
const raceEnabled = true
