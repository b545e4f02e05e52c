//go:build !unix

package main

import (
	"errors"
	"net"
)

// listen opens the HTTP listener; SO_REUSEPORT is a Unix option.
func listen(addr string, reuseport bool) (net.Listener, error) {
	if reuseport {
		return nil, errors.New("-reuseport needs a Unix system (SO_REUSEPORT)")
	}
	return net.Listen("tcp", addr)
}
