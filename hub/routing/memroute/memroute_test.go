package memroute_test

import (
	"testing"

	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/routing/memroute"
	"github.com/switchboard-hub/switchboard/hub/routing/routetest"
)

func TestRouter(t *testing.T) {
	routetest.RunRouterSuite(t, func(t *testing.T, cfg routing.Config) routing.Router {
		return memroute.New(cfg)
	})
}

func TestBus(t *testing.T) {
	routetest.RunBusSuite(t, func(t *testing.T) routing.Bus {
		b := memroute.NewBus()
		t.Cleanup(func() { _ = b.Close() })
		return b
	})
}
