//go:build !race

package dnsgeo

const raceEnabled = false
