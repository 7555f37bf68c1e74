package main

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"syscall"
)

// startupYields is how many times parkStartedGoroutines yields: a
// goroutine start-up began may itself start one (a listener's serve loop,
// its first connection's reader), and each round runs one generation.
const startupYields = 4

// parkStartedGoroutines yields the processor until the goroutines that
// start-up made runnable (listeners' accept loops, the admin server,
// pools' janitors) have each run to their first wait.
func parkStartedGoroutines() {
	for range startupYields {
		runtime.Gosched()
	}
}

// releaseBinaryPages unmaps, from this process only, the pages of the
// binary's code and read-only data it has touched so far. Start-up (the
// runtime's and about 160 packages' initialisation, the config load,
// the plugins' compile and start) runs code spread over the whole binary,
// and the kernel maps a 64 KiB window around each page touched: about
// 14 MiB of a 24 MiB binary stayed resident, mostly code that never runs
// again. The pages stay in the page cache (shared with every process of
// the binary, and the first memory the kernel reclaims once no process
// maps them); what the proxy runs from now on maps back in with a minor
// fault. Only read-only mappings are touched: the writable data's pages
// hold the process's state.
//
// It first lets the goroutines start-up began run to where they wait
// (parkStartedGoroutines): run before them, it would drop pages their
// first steps map straight back in (0.8 MiB of the bench config's
// 9.9 MiB, with GOMAXPROCS=1, where none of them has run yet when start-up
// returns).
func releaseBinaryPages() {
	parkStartedGoroutines()
	dropBinaryPages()
}

// dropBinaryPages unmaps the binary's read-only pages from the process.
func dropBinaryPages() {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// address perms offset dev inode path
		f := bytes.Fields(sc.Bytes())
		if len(f) != 6 || string(f[5]) != exe || len(f[1]) < 2 || f[1][1] != '-' {
			continue
		}
		from, to, ok := bytes.Cut(f[0], []byte("-"))
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(from), 16, 64)
		end, err2 := strconv.ParseUint(string(to), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED)
	}
}
