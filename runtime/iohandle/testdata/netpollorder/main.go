// Command netpollorder prints the order in which the runtime runs
// goroutines that a single netpoll found ready: 32 of them each wait to
// read their end of a socket pair, the main goroutine writes to the pairs
// in order 0..31 without yielding, then sleeps, so the scheduler finds all
// 32 ready in one poll. Run with GOMAXPROCS=1.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

func main() {
	const n = 32
	type pair struct{ r, w *os.File }
	pairs := make([]pair, n)
	for i := range pairs {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		if err != nil {
			panic(err)
		}
		syscall.SetNonblock(fds[0], true)
		pairs[i] = pair{os.NewFile(uintptr(fds[0]), "r"), os.NewFile(uintptr(fds[1]), "w")}
	}
	order := make(chan int, n)
	for i, p := range pairs {
		go func() {
			var b [1]byte
			p.r.Read(b[:])
			order <- i
		}()
	}
	time.Sleep(100 * time.Millisecond) // every reader parked in the poller
	for _, p := range pairs {
		p.w.Write([]byte{1})
	}
	time.Sleep(50 * time.Millisecond) // the one poll that finds them all
	got := make([]string, n)
	for i := range got {
		got[i] = fmt.Sprint(<-order)
	}
	fmt.Println(strings.Join(got, " "))
}
