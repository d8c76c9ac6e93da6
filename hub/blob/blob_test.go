package blob

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestDir(t *testing.T) {
	ctx := context.Background()
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "ab/cdef", strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	r, err := d.Get(ctx, "ab/cdef")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "hello" {
		t.Fatalf("got %q", b)
	}
	if err := d.Delete(ctx, "ab/cdef"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx, "ab/cdef"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	for _, bad := range []string{"", "../x", "a/../../b"} {
		if err := d.Put(ctx, bad, strings.NewReader("x")); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}
