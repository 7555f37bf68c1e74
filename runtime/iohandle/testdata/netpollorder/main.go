// Command netpollorder prints the order in which the runtime runs
// goroutines that a single netpoll found ready: 32 of them each wait to
// read their end of a socket pair, the main goroutine writes to the pairs
// in order 0..31 without yielding, then sleeps, so the scheduler finds all
// 32 ready in one poll. Run with GOMAXPROCS=1.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	const n = 32
	type pair struct {
		r *os.File
		w int // written with raw system calls, which never let another thread take the P and poll early
	}
	pairs := make([]pair, n)
	for i := range pairs {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		if err != nil {
			panic(err)
		}
		syscall.SetNonblock(fds[0], true)
		pairs[i] = pair{os.NewFile(uintptr(fds[0]), "r"), fds[1]}
	}
	order := make(chan int, n)
	for i, p := range pairs {
		go func() {
			var b [1]byte
			p.r.Read(b[:])
			order <- i
		}()
	}
	// Every reader parked in the poller (a late one would read its byte
	// without waiting and break the order).
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); ; {
		time.Sleep(10 * time.Millisecond)
		if strings.Count(string(buf[:runtime.Stack(buf, true)]), "[IO wait") == n {
			break
		}
		if time.Now().After(deadline) {
			panic("the readers did not all park")
		}
	}
	one := []byte{1}
	for _, p := range pairs {
		if _, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(p.w), uintptr(unsafe.Pointer(&one[0])), 1); e != 0 {
			panic(e)
		}
	}
	time.Sleep(50 * time.Millisecond) // the one poll that finds them all
	got := make([]string, n)
	for i := range got {
		got[i] = fmt.Sprint(<-order)
	}
	fmt.Println(strings.Join(got, " "))
}
