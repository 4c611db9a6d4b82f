//go:build unix

package stream

import (
	"errors"
	"net"
	"syscall"
)

// rawConnOf returns the system connection under c, for probing, or nil when it has none.
func rawConnOf(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// prober tells whether the clients of taken-over streams went away, without a goroutine per
// stream: one non-blocking read of the socket (Go's sockets are non-blocking) says whether the
// client closed it. Whatever the client sent is read and discarded, as a stream expects
// nothing from it. One goroutine uses a prober at a time.
type prober struct {
	buf  [64]byte
	gone bool
	read func(fd uintptr) bool // p.check, made once
}

func newProber() *prober {
	p := &prober{}
	p.read = p.check
	return p
}

// clientGone reports whether the client of rc closed its end, or the connection failed or
// was closed.
func (p *prober) clientGone(rc syscall.RawConn) bool {
	p.gone = false
	if err := rc.Read(p.read); err != nil {
		return true // closed already
	}
	return p.gone
}

// check reads fd once without waiting; it never asks rc.Read to wait.
func (p *prober) check(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), p.buf[:])
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			p.gone = false // nothing to read: the client is there
		case err != nil:
			p.gone = true // reset, or otherwise broken
		default:
			p.gone = n == 0 // end of file: the client closed; data is discarded
		}
		return true
	}
}
