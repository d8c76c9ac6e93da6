// Package loadtest measures the physical limits that benchmarks report
// beside their own figures, so a result reads as "x/s, y% of what the
// machine can do" rather than a bare number.
package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PgxInsertCommits measures raw single-row INSERT commits per second on
// the database at dsn from conns connections in parallel, for d: each
// INSERT is its own implicit transaction, so every row costs one commit
// (one WAL flush). This is the limit an ingest path that commits each
// message alone cannot beat.
func PgxInsertCommits(ctx context.Context, dsn string, conns int, d time.Duration) (float64, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return 0, err
	}
	cfg.MaxConns = int32(conns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	table := fmt.Sprintf("loadtest_limit_%d", time.Now().UnixNano())
	if _, err := pool.Exec(ctx, "CREATE TABLE "+table+" (id bigserial primary key, body text not null, created_at timestamptz not null default now())"); err != nil {
		return 0, err
	}
	defer pool.Exec(context.WithoutCancel(ctx), "DROP TABLE "+table) //nolint:errcheck
	var n atomic.Int64
	var firstErr error
	var once sync.Once
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if _, err := pool.Exec(ctx, "INSERT INTO "+table+" (body) VALUES ($1)", "a visitor message of ordinary length, about sixty bytes"); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}

// Percentile returns the p-th percentile (0..100) of ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// ProcessCPU returns the CPU time (user and system) used so far by the
// processes named name ("self" for this process), read from /proc: a
// benchmark takes it before and after a run to say where the machine's
// time went (Postgres backends live as long as their connections, so a
// run's own are counted). Zero where /proc is not there.
func ProcessCPU(name string) time.Duration {
	paths := []string{"/proc/self/stat"}
	if name != "self" {
		paths, _ = filepath.Glob("/proc/[0-9]*/stat")
	}
	return procCPU(paths, name)
}

// PIDCPU is ProcessCPU for one process.
func PIDCPU(pid int) time.Duration {
	return procCPU([]string{fmt.Sprintf("/proc/%d/stat", pid)}, "self")
}

func procCPU(paths []string, name string) time.Duration {
	const tick = 100 // USER_HZ: Linux reports /proc times in 1/100 s
	var ticks int64
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the process ended
		}
		// The name is in parentheses and may hold spaces: read after the
		// last ')'.
		open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || closing < open {
			continue
		}
		if name != "self" && string(b[open+1:closing]) != name {
			continue
		}
		f := bytes.Fields(b[closing+1:])
		if len(f) < 13 {
			continue
		}
		// Fields after the name: state(0) … utime(11) stime(12).
		u, _ := strconv.ParseInt(string(f[11]), 10, 64)
		st, _ := strconv.ParseInt(string(f[12]), 10, 64)
		ticks += u + st
	}
	return time.Duration(ticks) * time.Second / tick
}
