//go:build !linux

package iohandle

import "net"

// Elsewhere the standard library's reads and writes stay.
func wrapTCP(tc *net.TCPConn) net.Conn { return tc }

func isConn(net.Conn) bool { return false }

func onClose(net.Conn, func()) bool { return false }

func connQuiet(net.Conn) (bool, bool) { return false, false }

func holdReads(net.Conn, bool) bool { return false }
