//go:build race

package deploy

// raceEnabled: the tests run with -race; the edge and dnsgeo they start
// are built with it too (their races are found, and the build shares the
// cache of the tests' own).
const raceEnabled = true
