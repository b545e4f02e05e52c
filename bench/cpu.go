package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuTime is a process's user and system CPU time, and its peak RSS.
type cpuTime struct {
	user, sys time.Duration
	maxRSS    int64 // bytes
}

// ownCPU returns this process's CPU time so far (getrusage).
func ownCPU() cpuTime {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuTime{}
	}
	return cpuTime{
		user:   time.Duration(ru.Utime.Nano()),
		sys:    time.Duration(ru.Stime.Nano()),
		maxRSS: ru.Maxrss << 10, // Linux reports KiB
	}
}

// cpuSince returns this process's CPU use since c0 was sampled at t0, and
// its peak RSS.
func cpuSince(c0 cpuTime, t0 time.Time) (CPU, int64) {
	c1 := ownCPU()
	wall := time.Since(t0).Seconds()
	c := CPU{
		UserSeconds:   (c1.user - c0.user).Seconds(),
		SystemSeconds: (c1.sys - c0.sys).Seconds(),
		WallSeconds:   wall,
	}
	if wall > 0 {
		c.Cores = (c.UserSeconds + c.SystemSeconds) / wall
	}
	return c, c1.maxRSS
}

// ProcSample is what /proc says about a process at one moment.
type ProcSample struct {
	At      time.Time
	RSS     int64         // resident set size, bytes (VmRSS)
	CPU     time.Duration // user + system time so far (utime + stime)
	Threads int
	FDs     int // open file descriptors; -1 if unreadable
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// SampleProc reads /proc/PID/status and /proc/PID/stat.
func SampleProc(pid int) (ProcSample, error) {
	p := ProcSample{At: time.Now(), FDs: -1}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return p, fmt.Errorf("bench: sample process %d: %w", pid, err)
	}
	for line := range strings.Lines(string(status)) {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		switch {
		case key == "VmRSS" && len(f) >= 1:
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			p.RSS = kb << 10
		case key == "Threads" && len(f) >= 1:
			p.Threads, _ = strconv.Atoi(f[0])
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, fmt.Errorf("bench: sample process %d: %w", pid, err)
	}
	// The command name in parentheses may hold spaces: split after it.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return p, fmt.Errorf("bench: sample process %d: malformed stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// After the name: state is field 3; utime and stime are fields 14, 15.
	if len(f) < 13 {
		return p, fmt.Errorf("bench: sample process %d: short stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return p, fmt.Errorf("bench: sample process %d: malformed stat times", pid)
	}
	p.CPU = time.Duration(ut+st) * time.Second / clockTicks
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		p.FDs = len(ents)
	}
	return p, nil
}
