//go:build race

package corpus

// raceEnabled shrinks the generator tests under the race detector, which
// slows compress/flate and the text splicer about tenfold.
const raceEnabled = true
