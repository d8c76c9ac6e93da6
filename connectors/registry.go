package connectors

import (
	"fmt"
	"sort"
	"sync"
)

// Factory builds a connector from its configuration. It performs no I/O:
// it decodes and validates Config.Settings and returns an error that names
// the bad field.
type Factory func(cfg Config) (Connector, error)

// Registry maps channel kinds to factories. The command fills one
// explicitly; there is no global registration.
type Registry struct {
	mu        sync.RWMutex
	factories map[Kind]Factory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{factories: map[Kind]Factory{}}
}

// Register adds a factory; registering a kind twice is a programming error
// and returns an error.
func (r *Registry) Register(kind Kind, f Factory) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.factories[kind]; dup {
		return fmt.Errorf("connectors: kind %q registered twice", kind)
	}
	r.factories[kind] = f
	return nil
}

// Build creates a connector of the given kind.
func (r *Registry) Build(kind Kind, cfg Config) (Connector, error) {
	r.mu.RLock()
	f, ok := r.factories[kind]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	}
	return f(cfg)
}

// Kinds lists the registered kinds, sorted.
func (r *Registry) Kinds() []Kind {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Kind, 0, len(r.factories))
	for k := range r.factories {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
