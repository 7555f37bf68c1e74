//go:build tools

// Package grpcinterop pins grpc-go's interop client and server, which the
// conformance suite builds from this separate module so that their many
// dependencies (xDS, cloud credentials) stay out of sluice's own go.mod.
package grpcinterop

import (
	_ "google.golang.org/grpc/interop/client"
	_ "google.golang.org/grpc/interop/server"
)
