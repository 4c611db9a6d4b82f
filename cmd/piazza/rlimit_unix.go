//go:build unix

package main

import "syscall"

// raiseOpenFileLimit lifts the soft limit on open files to the hard limit: a gateway holds one
// descriptor per SSE connection, and the usual soft limit (1024) would cap it far below what
// the machine allows. It returns the limit in force.
func raiseOpenFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}
