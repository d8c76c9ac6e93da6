package loadtest

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/testenv"
)

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	if got := Percentile(ds, 50); got != 3 {
		t.Fatalf("p50 = %v", got)
	}
	if got := Percentile(ds, 100); got != 5 {
		t.Fatalf("p100 = %v", got)
	}
	if got := Percentile(nil, 99); got != 0 {
		t.Fatalf("empty = %v", got)
	}
}

// BenchmarkPgxInsertLimit prints the raw commit rate the visitor benchmark
// compares itself with.
func BenchmarkPgxInsertLimit(b *testing.B) {
	dsn := testenv.Postgres(b)
	for range b.N {
		rate, err := PgxInsertCommits(context.Background(), dsn, 16, 3*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(rate, "commits/s")
	}
}
