package iohandle

import (
	"sync/atomic"
	"syscall"
	"time"
)

// What the monitor thread still does for us. Plain system calls leave it
// asleep, and it also preempts a goroutine that runs for more than 10 ms
// so the others get the CPU; asleep, it would not until the next timer in
// the process fired, and a goroutine that took the only P after an idle
// spell could hold it that long. So the monitor's sleep is kept bounded
// while sockets are busy:
//
//   - the first socket call after guardPeriod without one arms a timer
//     guardPeriod ahead (the monitor never sleeps past the process's next
//     timer) and makes one ordinary system call, which wakes the monitor
//     from a sleep that began before the timer existed;
//   - while calls keep coming, the timer is armed again as it fires,
//     without the wake-up: the monitor then wakes about once per period
//     instead of after every idle spell.
//
// The guard is per process because the monitor is: one per runtime.
const guardPeriod = 10 * time.Millisecond

var guard struct {
	armed   atomic.Bool
	firedAt atomic.Int64 // monotonic ns, since start
	timer   *time.Timer
}

var start = time.Now()

func init() {
	guard.timer = time.AfterFunc(time.Hour, func() {
		guard.firedAt.Store(int64(time.Since(start)))
		guard.armed.Store(false)
	})
	guard.timer.Stop()
	guard.firedAt.Store(-int64(time.Hour))
}

// keepMonitorNear is called before each socket call; a load when armed.
func keepMonitorNear() {
	if guard.armed.Load() {
		return
	}
	arm()
}

func arm() {
	if !guard.armed.CompareAndSwap(false, true) {
		return
	}
	guard.timer.Reset(guardPeriod)
	if time.Duration(int64(time.Since(start))-guard.firedAt.Load()) > guardPeriod {
		// Sockets were quiet for a period: the monitor may be in a
		// sleep longer than the timer. getpid through the scheduler's
		// system call path wakes it.
		syscall.Syscall(syscall.SYS_GETPID, 0, 0, 0)
	}
}
