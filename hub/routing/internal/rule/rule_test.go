package rule

import (
	"testing"

	"github.com/switchboard-hub/switchboard/hub/routing"
)

func TestMemberRoundTrip(t *testing.T) {
	cases := []struct{ inst, id string }{
		{"i", "t1"},
		{"", ""},
		{"a:b", ":c"},
		{"12:x", "3:yz"},
		{"é\x00", "\xff"},
	}
	for _, c := range cases {
		m := Member(c.inst, c.id)
		inst, id, err := SplitMember(m)
		if err != nil || inst != c.inst || id != c.id {
			t.Errorf("SplitMember(Member(%q, %q)) = %q, %q, %v", c.inst, c.id, inst, id, err)
		}
	}
	for _, bad := range []string{"", "x", "9:ab", "-1:a", "a:b", "01:ab", "+1:ab"} {
		if _, _, err := SplitMember(bad); err == nil {
			t.Errorf("SplitMember(%q): no error", bad)
		}
	}
}

func FuzzSplitMember(f *testing.F) {
	f.Add("1:it1")
	f.Add("3:a:bc")
	f.Fuzz(func(t *testing.T, m string) {
		inst, id, err := SplitMember(m)
		if err == nil && Member(inst, id) != m {
			t.Errorf("SplitMember(%q) = %q, %q does not re-encode", m, inst, id)
		}
	})
}

func TestQueueScoreOrder(t *testing.T) {
	// Served first = lower score: priority first, then arrival.
	ordered := []struct {
		prio int
		seq  int64
	}{
		{MaxPriority, 1 << 32},
		{5, 1},
		{5, 2},
		{0, 1},
		{0, 1<<33 - 1},
		{-MaxPriority, 1},
	}
	for i := 1; i < len(ordered); i++ {
		a, b := ordered[i-1], ordered[i]
		if QueueScore(a.prio, a.seq) >= QueueScore(b.prio, b.seq) {
			t.Errorf("score(%v) >= score(%v)", a, b)
		}
	}
	if QueueScore(1<<40, 1) != QueueScore(MaxPriority, 1) {
		t.Error("priority not clamped")
	}
}

func TestCheckAgent(t *testing.T) {
	a, err := CheckAgent(routing.Agent{InstanceID: "i", AgentID: "a", Teams: []string{"b", "", "a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if a.Capacity != 1 || a.Status != routing.Available || len(a.Teams) != 2 || a.Teams[0] != "a" || a.Teams[1] != "b" {
		t.Errorf("normalized: %+v", a)
	}
}
