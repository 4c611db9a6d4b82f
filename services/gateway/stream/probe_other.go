//go:build !unix

package stream

import (
	"net"
	"syscall"
)

// rawConnOf returns nil: without a non-blocking read of the socket, each taken-over stream
// has a watcher goroutine instead (conn.watch).
func rawConnOf(net.Conn) syscall.RawConn { return nil }

type prober struct{}

func newProber() *prober { return &prober{} }

func (*prober) clientGone(syscall.RawConn) bool { return false }
