package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicksPerSecond is USER_HZ, the unit of utime and stime in
// /proc/PID/stat. Go cannot call sysconf(_SC_CLK_TCK) without cgo; it is
// 100 on every Linux architecture this runs on (x86, arm, riscv).
const clockTicksPerSecond = 100

// ProcSample is one reading of a process's memory and CPU time.
type ProcSample struct {
	RSSKiB int64         // VmRSS
	CPU    time.Duration // utime + stime over all threads
}

// ReadProc reads VmRSS from /proc/PID/status and utime+stime from
// /proc/PID/stat.
func ReadProc(pid int) (ProcSample, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("reading server status: %w", err)
	}
	rss, err := parseStatusRSS(status)
	if err != nil {
		return ProcSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("reading server stat: %w", err)
	}
	ticks, err := parseStatCPU(stat)
	if err != nil {
		return ProcSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return ProcSample{RSSKiB: rss, CPU: time.Duration(ticks) * time.Second / clockTicksPerSecond}, nil
}

// parseStatusRSS finds the "VmRSS:   1234 kB" line.
func parseStatusRSS(b []byte) (int64, error) {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("malformed VmRSS line %q", bytes.TrimSpace(line))
		}
		n, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed VmRSS value: %w", err)
		}
		return n, nil
	}
	return 0, errors.New("no VmRSS in status (a zombie or kernel thread?)")
}

// parseStatCPU returns utime+stime in clock ticks. The second field, the
// command name, is in parentheses and may itself contain spaces and
// parentheses, so fields are counted from the last ')'.
func parseStatCPU(b []byte) (int64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat: no command name")
	}
	// After ")": state(3) ppid(4) ... utime(14) stime(15).
	f := bytes.Fields(b[i+1:])
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return 0, fmt.Errorf("malformed stat: %d fields after the command name", len(f))
	}
	u, err := strconv.ParseInt(string(f[utime]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed utime: %w", err)
	}
	s, err := strconv.ParseInt(string(f[stime]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed stime: %w", err)
	}
	return u + s, nil
}
