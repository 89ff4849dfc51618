package fabrictest

// raceEnabled is set when the tests run with -race; the agent is then built
// with -race too.
var raceEnabled bool
