package redisroute

import "sync"

// coalescer hands calls to run in groups: the calls queued while a group
// is under way leave together in the next one, at most max at a time and
// at most inFlight groups at once. Alone, a call leaves at once; under
// load, a thousand calls cost a few groups. The pipe (round trips) and
// the follow-ups (script calls) are both built on it.
type coalescer[C any] struct {
	max      int
	inFlight int
	run      func([]C)

	mu      sync.Mutex
	queue   []C
	running int
}

// add queues c; run sees it in a later group.
func (q *coalescer[C]) add(c C) {
	q.mu.Lock()
	q.queue = append(q.queue, c)
	if q.running < q.inFlight {
		q.running++
		go q.flush()
	}
	q.mu.Unlock()
}

// flush runs what is queued until nothing is.
func (q *coalescer[C]) flush() {
	q.mu.Lock()
	for len(q.queue) > 0 {
		n := min(len(q.queue), q.max)
		group := q.queue[:n:n]
		q.queue = q.queue[n:]
		if len(q.queue) == 0 {
			q.queue = nil
		}
		q.mu.Unlock()
		q.run(group)
		q.mu.Lock()
	}
	q.running--
	q.mu.Unlock()
}
