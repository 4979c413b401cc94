//go:build race

package dnsgeo

const raceEnabled = true
