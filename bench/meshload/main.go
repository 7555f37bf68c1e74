// Command meshload is the load generator of bench/mesh.sh: a fixed request
// rate over keep-alive HTTP/1.1 connections, with each connection's sends
// spread evenly over the period rather than all connections firing at once.
//
// h2load --rps (and fortio without -uniform) start every connection's timer
// at the same instant, so 16 connections at 62.5 req/s each send bursts of
// 16 requests every 16 ms: the median request then waits behind half a
// burst, and what is measured is mostly queueing, multiplied by however
// many hops there are. Here connection i sends at offset i*period/c, so
// 1,000 req/s arrive one per millisecond.
//
// A response is read whole (Content-Length or chunked); its latency runs
// from the write of the request to the last byte of the answer. When an
// answer comes late the next request of that connection goes at once and
// is counted as late. The output is one line:
//
//	NAME REQUESTS P50_MS P90_MS P99_MS ERRORS LATE
//
// and, with -raw FILE, every latency in microseconds, one a line (appended).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	var (
		addr     = flag.String("addr", "127.0.0.1:80", "address to connect to")
		host     = flag.String("host", "app", "Host header")
		path     = flag.String("path", "/", "request path")
		rate     = flag.Float64("rate", 1000, "requests per second, all connections together")
		conns    = flag.Int("c", 16, "connections")
		duration = flag.Duration("d", 10*time.Second, "how long to send")
		name     = flag.String("name", "run", "name printed first on the result line")
		raw      = flag.String("raw", "", "append every latency (microseconds) to this file")
	)
	flag.Parse()
	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: " + *host + "\r\nUser-Agent: meshload\r\n\r\n")
	period := time.Duration(float64(*conns) / *rate * float64(time.Second))
	start := time.Now().Add(50 * time.Millisecond)
	end := start.Add(*duration)

	var (
		mu   sync.Mutex
		lats []time.Duration
		errs int
		late int
		wg   sync.WaitGroup
	)
	for i := range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine, e, l := runConn(*addr, req, start.Add(time.Duration(i)*period/time.Duration(*conns)), period, end)
			mu.Lock()
			lats = append(lats, mine...)
			errs += e
			late += l
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(lats)
	pct := func(p float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		return float64(lats[min(len(lats)-1, int(float64(len(lats))*p))]) / 1e6
	}
	fmt.Printf("%s %d %.3f %.3f %.3f %d %d\n", *name, len(lats), pct(0.5), pct(0.9), pct(0.99), errs, late)
	if *raw != "" {
		f, err := os.OpenFile(*raw, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		w := bufio.NewWriter(f)
		for _, d := range lats {
			w.WriteString(strconv.FormatInt(d.Microseconds(), 10))
			w.WriteByte('\n')
		}
		w.Flush()
		f.Close()
	}
	if len(lats) == 0 {
		os.Exit(1)
	}
}

// runConn sends on one connection at first, first+period, ... until end,
// redialing after an error.
func runConn(addr string, req []byte, first time.Time, period time.Duration, end time.Time) (lats []time.Duration, errs, late int) {
	var (
		c  net.Conn
		br *bufio.Reader
	)
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for next := first; next.Before(end); next = next.Add(period) {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else if d < -period/2 {
			late++
		}
		if c == nil {
			var err error
			if c, err = net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
				errs++
				c = nil
				continue
			}
			br = bufio.NewReaderSize(c, 16<<10)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		t0 := time.Now()
		_, err := c.Write(req)
		if err == nil {
			err = readResponse(br)
		}
		if err != nil {
			errs++
			c.Close()
			c = nil
			continue
		}
		lats = append(lats, time.Since(t0))
	}
	return lats, errs, late
}

var errStatus = errors.New("status not 200")

// readResponse reads one HTTP/1.1 response with a Content-Length or a
// chunked body, and fails on any status but 200.
func readResponse(br *bufio.Reader) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 12 || string(line[9:12]) != "200" {
		return fmt.Errorf("%w: %q", errStatus, strings.TrimSpace(string(line)))
	}
	length, chunked := int64(-1), false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return err
		}
		h := strings.TrimSpace(string(line))
		if h == "" {
			break
		}
		k, v, _ := strings.Cut(h, ":")
		switch strings.ToLower(k) {
		case "content-length":
			if length, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
				return err
			}
		case "transfer-encoding":
			chunked = strings.Contains(strings.ToLower(v), "chunked")
		}
	}
	if !chunked {
		if length < 0 {
			return errors.New("no Content-Length and not chunked")
		}
		_, err = br.Discard(int(length))
		return err
	}
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(string(line), ";", 2)[0]), 16, 64)
		if err != nil {
			return err
		}
		if size == 0 {
			// Trailers, if any, end with an empty line.
			for {
				line, err = br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if strings.TrimSpace(string(line)) == "" {
					return nil
				}
			}
		}
		if _, err = br.Discard(int(size)); err != nil {
			return err
		}
		if _, err = io.ReadFull(br, make([]byte, 2)); err != nil {
			return err
		}
	}
}
