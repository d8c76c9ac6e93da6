package gateway

import (
	"fmt"
	"testing"

	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/internal/testenv"
)

// Tickets that waited while nobody was available are offered as soon as
// an agent becomes available, up to the agent's capacity.
func TestBacklogOfferedOnPresence(t *testing.T) {
	testenv.Databases(t, func(t *testing.T, dsn string) {
		e := newEnv(t, envOpts{dsn: dsn})
		e.instance("acme", "")
		for i := range 40 {
			e.inbound("acme", fmt.Sprint("wait-", i), fmt.Sprint("w", i), "anyone there?")
		}
		_, token := e.agent("acme", "Ann")
		ann := e.connect("ann", token)
		ann.ok("presence", map[string]any{"status": "available"}, nil)
		ann.waitCount("offers of the backlog", 3, func(m msg) bool { return m.Type == hub.UpdateOffer })
	})
}
