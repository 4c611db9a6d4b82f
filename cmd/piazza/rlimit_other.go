//go:build !unix

package main

// raiseOpenFileLimit has nothing to raise where there are no rlimits.
func raiseOpenFileLimit() (uint64, error) { return 0, nil }
