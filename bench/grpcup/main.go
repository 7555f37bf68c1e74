// Command grpcup is the gRPC upstream of bench/run.sh's gRPC unary row:
// grpc-go's interop TestService over h2c, the same service the gRPC tests
// and the conformance suite run behind sluice. Both proxies (sluice and
// nginx's grpc_pass) forward to one grpcup, so the row compares the
// proxies and not their upstreams.
//
// With -check ADDR it is instead a client: one UnaryCall to ADDR with the
// request the benchmark sends (response_size 20), exiting non-zero unless
// it comes back whole with status OK. The load generator (h2load) counts a
// 200 with grpc-status != 0 as a success, so run.sh checks each path with
// a real gRPC client before it measures.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18085", "address to serve on")
	check := flag.String("check", "", "instead of serving, make one UnaryCall to this address and exit")
	flag.Parse()
	if *check != "" {
		if err := checkUnary(*check); err != nil {
			fmt.Fprintf(os.Stderr, "grpcup: unary call through %s: %v\n", *check, err)
			os.Exit(1)
		}
		return
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpcup:", err)
		os.Exit(1)
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, interop.NewTestServer())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; s.Stop() }()
	if err := s.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "grpcup:", err)
		os.Exit(1)
	}
}

func checkUnary(addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := testgrpc.NewTestServiceClient(conn).UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 20})
	if err != nil {
		return err
	}
	if n := len(resp.GetPayload().GetBody()); n != 20 {
		return fmt.Errorf("payload of %d bytes, want 20", n)
	}
	return nil
}
