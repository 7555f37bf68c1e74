package mesh

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"sync"
	"testing"
	"time"
)

func TestConnTLSInfo(t *testing.T) {
	p := newPKI(t, "example.org")
	chain := p.chain("orders", "spiffe://example.org/ns/shop/sa/orders", time.Now().Add(-time.Minute), time.Hour)
	cs := &tls.ConnectionState{Version: tls.VersionTLS13, ServerName: "orders", PeerCertificates: chain}
	sum := sha256.Sum256(chain[0].Raw)

	got := TLSInfo(cs)
	if !got.MTLS || got.Version != "TLSv1.3" || got.ServerName != "orders" ||
		got.PeerCertSHA256 != hex.EncodeToString(sum[:]) || got.PeerSubject != chain[0].Subject.String() ||
		len(got.PeerURISANs) != 1 || got.PeerURISANs[0] != "spiffe://example.org/ns/shop/sa/orders" {
		t.Fatalf("TLSInfo = %+v", got)
	}
	if plain := TLSInfo(&tls.ConnectionState{Version: tls.VersionTLS12}); plain.MTLS || plain.PeerCertSHA256 != "" {
		t.Fatalf("TLSInfo without a peer certificate = %+v", plain)
	}

	// Without a connection context every call works it out again.
	if a, b := ConnTLSInfo(context.Background(), cs), ConnTLSInfo(context.Background(), cs); a == b {
		t.Fatal("ConnTLSInfo without WithConnTLS shared its answer")
	}

	// With one, all requests of the connection (HTTP/2 streams run on
	// their own goroutines) share the first answer.
	ctx := WithConnTLS(context.Background())
	first := ConnTLSInfo(ctx, cs)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ConnTLSInfo(ctx, cs) != first {
				t.Error("a second request on the connection worked the facts out again")
			}
		}()
	}
	wg.Wait()
	if first.PeerCertSHA256 != got.PeerCertSHA256 || first.PeerSubject != got.PeerSubject {
		t.Fatalf("cached %+v, want %+v", first, got)
	}
	// Another connection has its own.
	if ConnTLSInfo(WithConnTLS(context.Background()), cs) == first {
		t.Fatal("two connections shared one cache")
	}
}

func BenchmarkConnTLSInfo(b *testing.B) {
	p := newPKI(b, "example.org")
	chain := p.chain("orders", "spiffe://example.org/ns/shop/sa/orders", time.Now().Add(-time.Minute), time.Hour)
	cs := &tls.ConnectionState{Version: tls.VersionTLS13, PeerCertificates: chain}
	b.Run("per-request", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			TLSInfo(cs)
		}
	})
	b.Run("per-connection", func(b *testing.B) {
		ctx := WithConnTLS(context.Background())
		b.ReportAllocs()
		for b.Loop() {
			ConnTLSInfo(ctx, cs)
		}
	})
}
