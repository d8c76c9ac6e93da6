package jsonsettings

import (
	"strings"
	"testing"
	"time"
)

type inner struct {
	Host string   `json:"host"`
	Wait Duration `json:"wait,omitempty"`
}

type outer struct {
	Name  string  `json:"name"`
	Inner *inner  `json:"inner,omitempty"`
	List  []inner `json:"list,omitempty"`
	Count int     `json:"count,omitempty"`
}

func TestDecode(t *testing.T) {
	for _, c := range []struct {
		in, err string
	}{
		{``, ""},
		{`null`, ""},
		{`{"name":"a","inner":{"host":"h","wait":"30s"},"list":[{"host":"x"}]}`, ""},
		{`{"nmae":"a"}`, "settings.nmae: unknown field"},
		{`{"inner":{"hots":"h"}}`, "settings.inner.hots: unknown field"},
		{`{"list":[{"host":"x"},{"port":1}]}`, "settings.list[1].port: unknown field"},
		{`{"Name":"a"}`, "settings.Name: unknown field"}, // exact spelling only
		{`{"count":"3"}`, "settings.count: must be a whole number"},
		{`{"inner":{"wait":"soon"}}`, `settings.inner.wait: must be a duration such as "30s" or "5m", not "soon"`},
		{`{"inner":{"wait":"-1s"}}`, `settings.inner.wait: must be a duration`},
		{`[1]`, "settings: must be a JSON object"},
		{`{"name":"a"} {}`, "unexpected data after the JSON object"},
		{`{"name":`, "settings: invalid JSON"},
	} {
		var v outer
		err := Decode([]byte(c.in), &v)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.in, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want %q", c.in, err, c.err)
		}
	}
	var v outer
	if err := Decode([]byte(`{"inner":{"wait":"1m30s"}}`), &v); err != nil || v.Inner.Wait.D() != 90*time.Second {
		t.Fatalf("duration: %v %v", v.Inner, err)
	}
}
