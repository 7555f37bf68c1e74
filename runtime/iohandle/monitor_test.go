//go:build linux

package iohandle

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// voluntarySwitches sums the voluntary context switches of every thread
// of process pid: each time one of them went to sleep.
func voluntarySwitches(t testing.TB, pid int) int {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		t.Skip("no /proc/PID/task")
	}
	total := 0
	for _, p := range tasks {
		f, err := os.Open(p)
		if err != nil {
			continue // the thread ended
		}
		s := bufio.NewScanner(f)
		for s.Scan() {
			if v, ok := strings.CutPrefix(s.Text(), "voluntary_ctxt_switches:"); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				total += n
			}
		}
		f.Close()
	}
	return total
}

// startHelper runs this test binary's helper test name as a child process
// on one P, with env added, and returns its pid and a dialer to the
// address it prints; the process and every connection end with the test.
func startHelper(t *testing.T, name, env string) (int, func() net.Conn) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env, "GOMAXPROCS=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("%s printed no address: %v", name, err)
	}
	return cmd.Process.Pid, func() net.Conn {
		c, err := net.DialTimeout("tcp", strings.TrimSpace(addr), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
}

const echoEnv = "IOHANDLE_TEST_ECHO"

// TestHelperEcho is not a test: run as a child process (with echoEnv set
// to "wrapped" or "plain") it prints its listening address, then echoes
// what one connection sends until it closes. It has no timers of its own,
// so between two messages it is idle, as a sidecar at low load is.
func TestHelperEcho(t *testing.T) {
	mode := os.Getenv(echoEnv)
	if mode == "" {
		t.Skip("helper process only")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if mode == "wrapped" {
		ln = Listener(ln)
	}
	fmt.Println(ln.Addr())
	c, err := ln.Accept()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

// echoSwitches runs the echo helper on one P and counts its threads'
// voluntary context switches per exchange, with the helper idle for a
// millisecond between exchanges.
func echoSwitches(t *testing.T, mode string) float64 {
	t.Helper()
	pid, dial := startHelper(t, "TestHelperEcho", echoEnv+"="+mode)
	c := dial()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 4)
	exchange := func() {
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 { // the helper's threads and buffers settle
		exchange()
	}
	const n = 300
	before := voluntarySwitches(t, pid)
	for range n {
		time.Sleep(time.Millisecond)
		exchange()
	}
	return float64(voluntarySwitches(t, pid)-before) / n
}

// The point of the package. The standard library's socket calls wake the
// runtime's monitor thread (sysmon) on the first call after an idle spell;
// it then sleeps and wakes every 20 us until the process is idle again,
// and goes back to a deep sleep: a few context switches an exchange on
// top of the poller's one. Plain system calls leave it in its deep sleep.
func TestMonitorStaysAsleep(t *testing.T) {
	plain := echoSwitches(t, "plain")
	wrapped := echoSwitches(t, "wrapped")
	t.Logf("voluntary context switches per exchange: plain %.2f, wrapped %.2f", plain, wrapped)
	if wrapped > plain-1 {
		t.Fatalf("wrapped connections switch %.2f times per exchange, plain ones %.2f: want at least one fewer (the monitor thread's wake-up)", wrapped, plain)
	}
}

const busyEnv = "IOHANDLE_TEST_BUSY"

// TestHelperBusy is not a test: run as a child process (busyEnv set) it
// serves wrapped connections on one P; a message starting with 'b' makes
// its handler compute for a second before it answers, any other message
// is echoed at once.
func TestHelperBusy(t *testing.T) {
	if os.Getenv(busyEnv) == "" {
		t.Skip("helper process only")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listener(ln)
	fmt.Println(ln.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 16)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if buf[0] == 'b' {
					for end := time.Now().Add(time.Second); time.Now().Before(end); {
					}
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
	}
}

// A handler that computes for long after an idle spell does not hold the
// only P for all of it: the monitor thread, woken by the guard, preempts
// it, so another connection's echo comes back first. Without the guard
// the monitor slept through and the echo waited for the whole second.
func TestBusyHandlerIsPreempted(t *testing.T) {
	_, dial := startHelper(t, "TestHelperBusy", busyEnv+"=1")
	busy, echo := dial(), dial()
	buf := make([]byte, 16)
	roundTrip := func(c net.Conn, msg string) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	}
	roundTrip(echo, "e")
	time.Sleep(100 * time.Millisecond) // the helper idles: its monitor sleeps
	if _, err := busy.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the busy handler has the P
	began := time.Now()
	roundTrip(echo, "e")
	t.Logf("echo during the busy handler: %v", time.Since(began))
	// Had the busy handler held the P to the end, its answer would be in
	// before the echo.
	busy.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if n, err := busy.Read(buf); err == nil {
		t.Fatalf("the busy handler answered (%q) before the echo came back: it held the only P throughout", buf[:n])
	}
}
