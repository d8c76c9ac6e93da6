package routetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/routing"
)

// busWait bounds every wait for a delivery. A bus is asynchronous, so bus
// tests wait on channels; the bound only turns a lost message into a
// failure instead of a hang.
const busWait = 5 * time.Second

// RunBusSuite runs every Bus behaviour against buses made by newBus, each
// test with its own bus (newBus registers its own cleanup).
func RunBusSuite(t *testing.T, newBus func(t *testing.T) routing.Bus) {
	tests := []struct {
		name string
		run  func(t *testing.T, b routing.Bus)
	}{
		{"Delivers", testBusDelivers},
		{"OrderPerPublisher", testBusOrder},
		{"FansOutAndKeepsTopicsApart", testBusFanOut},
		{"Cancel", testBusCancel},
		{"ContextEndsSubscription", testBusContext},
		{"CancelFromHandler", testBusCancelFromHandler},
		{"BinaryPayload", testBusBinary},
		{"ConcurrentPublishers", testBusConcurrent},
		{"Close", testBusClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newBus(t))
		})
	}
}

// inbox collects one subscription's payloads.
type inbox struct {
	ch chan []byte
}

func newInbox() *inbox { return &inbox{ch: make(chan []byte, 4096)} }

func (in *inbox) fn(p []byte) { in.ch <- bytes.Clone(p) }

func (in *inbox) next(t *testing.T) []byte {
	t.Helper()
	select {
	case p := <-in.ch:
		return p
	case <-time.After(busWait):
		t.Fatalf("no message within %v", busWait)
		return nil
	}
}

func (in *inbox) want(t *testing.T, want string) {
	t.Helper()
	if got := in.next(t); string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// empty checks that nothing arrived. Callers first wait for a later
// message on another subscription, so anything that could arrive has.
func (in *inbox) empty(t *testing.T) {
	t.Helper()
	select {
	case p := <-in.ch:
		t.Fatalf("unexpected message %q", p)
	default:
	}
}

func subscribe(t *testing.T, ctx context.Context, b routing.Bus, topic string) (*inbox, func()) {
	t.Helper()
	in := newInbox()
	cancel, err := b.Subscribe(ctx, topic, in.fn)
	if err != nil {
		t.Fatalf("subscribe %s: %v", topic, err)
	}
	t.Cleanup(cancel)
	return in, cancel
}

func publish(t *testing.T, b routing.Bus, topic, payload string) {
	t.Helper()
	if err := b.Publish(t.Context(), topic, []byte(payload)); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

func testBusDelivers(t *testing.T, b routing.Bus) {
	in, _ := subscribe(t, t.Context(), b, "agent.a1")
	// A message published right after Subscribe returns is delivered.
	publish(t, b, "agent.a1", "hello")
	in.want(t, "hello")
	if err := b.Publish(t.Context(), "nobody.listens", []byte("x")); err != nil {
		t.Errorf("publish without subscribers: %v", err)
	}
}

func testBusOrder(t *testing.T, b routing.Bus) {
	in, _ := subscribe(t, t.Context(), b, "order")
	const n = 300
	for i := range n {
		publish(t, b, "order", fmt.Sprint(i))
	}
	for i := range n {
		in.want(t, fmt.Sprint(i))
	}
}

func testBusFanOut(t *testing.T, b routing.Bus) {
	x1, _ := subscribe(t, t.Context(), b, "x")
	x2, _ := subscribe(t, t.Context(), b, "x")
	y, _ := subscribe(t, t.Context(), b, "y")
	publish(t, b, "x", "to x")
	publish(t, b, "y", "to y")
	x1.want(t, "to x")
	x2.want(t, "to x")
	y.want(t, "to y")
	x1.empty(t)
	x2.empty(t)
	y.empty(t)
}

func testBusCancel(t *testing.T, b routing.Bus) {
	gone, cancel := subscribe(t, t.Context(), b, "c")
	stays, _ := subscribe(t, t.Context(), b, "c")
	publish(t, b, "c", "both")
	gone.want(t, "both")
	stays.want(t, "both")
	cancel()
	cancel() // idempotent
	publish(t, b, "c", "after cancel")
	stays.want(t, "after cancel")
	gone.empty(t)

	// The last subscriber of a topic leaving and a new one arriving.
	_, cancelAll := subscribe(t, t.Context(), b, "d")
	cancelAll()
	again, _ := subscribe(t, t.Context(), b, "d")
	publish(t, b, "d", "again")
	again.want(t, "again")
}

func testBusContext(t *testing.T, b routing.Bus) {
	ctx, end := context.WithCancel(t.Context())
	gone, _ := subscribe(t, ctx, b, "ctx")
	stays, _ := subscribe(t, t.Context(), b, "ctx")
	publish(t, b, "ctx", "before")
	gone.want(t, "before")
	stays.want(t, "before")
	end()
	publish(t, b, "ctx", "after")
	stays.want(t, "after")
	gone.empty(t)
}

func testBusCancelFromHandler(t *testing.T, b routing.Bus) {
	got := make(chan string, 10)
	var cancel func()
	var mu sync.Mutex
	mu.Lock()
	c, err := b.Subscribe(t.Context(), "self", func(p []byte) {
		mu.Lock()
		defer mu.Unlock()
		got <- string(p)
		cancel()
	})
	if err != nil {
		t.Fatal(err)
	}
	cancel = c
	mu.Unlock()
	t.Cleanup(c)
	watch, _ := subscribe(t, t.Context(), b, "self")
	publish(t, b, "self", "one")
	watch.want(t, "one")
	select {
	case p := <-got:
		if p != "one" {
			t.Fatalf("got %q", p)
		}
	case <-time.After(busWait):
		t.Fatal("handler not called")
	}
	publish(t, b, "self", "two")
	watch.want(t, "two")
	if len(got) != 0 {
		t.Fatalf("handler called after cancelling itself: %q", <-got)
	}
}

func testBusBinary(t *testing.T, b routing.Bus) {
	in, _ := subscribe(t, t.Context(), b, "bin")
	payload := []byte{0, 1, 0xff, 0xfe, '\n', 0, 'x'}
	buf := bytes.Clone(payload)
	if err := b.Publish(t.Context(), "bin", buf); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'Z' // the bus must not keep the caller's buffer
	if got := in.next(t); !bytes.Equal(got, payload) {
		t.Fatalf("got %v, want %v", got, payload)
	}
	if err := b.Publish(t.Context(), "bin", nil); err != nil {
		t.Fatal(err)
	}
	if got := in.next(t); len(got) != 0 {
		t.Fatalf("empty payload arrived as %v", got)
	}
}

func testBusConcurrent(t *testing.T, b routing.Bus) {
	in, _ := subscribe(t, t.Context(), b, "many")
	const publishers, each = 4, 50
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				if err := b.Publish(t.Context(), "many", fmt.Appendf(nil, "%d/%d", p, i)); err != nil {
					t.Errorf("publish: %v", err)
				}
			}
		})
	}
	wg.Wait()
	next := make([]int, publishers)
	for range publishers * each {
		var p, i int
		if _, err := fmt.Sscanf(string(in.next(t)), "%d/%d", &p, &i); err != nil {
			t.Fatal(err)
		}
		if i != next[p] {
			t.Fatalf("publisher %d: got message %d, want %d", p, i, next[p])
		}
		next[p]++
	}
}

func testBusClose(t *testing.T, b routing.Bus) {
	subscribe(t, t.Context(), b, "z")
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := b.Publish(t.Context(), "z", []byte("x")); err == nil {
		t.Error("publish after close: no error")
	}
	if _, err := b.Subscribe(t.Context(), "z", func([]byte) {}); err == nil {
		t.Error("subscribe after close: no error")
	}
	if err := b.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}
