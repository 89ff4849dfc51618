//go:build race

package fabrictest

func init() { raceEnabled = true }
