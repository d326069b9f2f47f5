package main

import (
	"slices"
	"testing"
)

func TestLedgerTally(t *testing.T) {
	cases := []struct {
		name      string
		early     []string // delivered before the load generator saw their 202
		acked     []string
		delivered []string
		want      tally
	}{
		{name: "empty"},
		{name: "all delivered once", acked: []string{"a", "b"}, delivered: []string{"b", "a"},
			want: tally{acked: 2, takes: 2, distinct: 2}},
		{name: "a duplicate", acked: []string{"a", "b"}, delivered: []string{"a", "b", "a"},
			want: tally{acked: 2, takes: 3, distinct: 2, duplicates: 1}},
		{name: "a loss hidden by a duplicate in the totals", acked: []string{"a", "b"}, delivered: []string{"a", "a"},
			want: tally{acked: 2, takes: 2, distinct: 1, duplicates: 1, missing: 1, lost: []string{"b"}}},
		{name: "delivered but never acknowledged", acked: []string{"a"}, delivered: []string{"a", "z", "z", "z"},
			want: tally{acked: 1, takes: 4, distinct: 2, duplicates: 2, unacked: 1}},
		{name: "acked twice counts once", acked: []string{"a", "a"}, delivered: nil,
			want: tally{acked: 1, missing: 1, lost: []string{"a"}}},
		{name: "delivered before the 202 was read", early: []string{"a", "b"}, acked: []string{"a", "b", "c"}, delivered: []string{"b"},
			want: tally{acked: 3, takes: 3, distinct: 2, duplicates: 1, missing: 1, lost: []string{"c"}}},
		{name: "lost ids: the first five, sorted", acked: []string{"g", "f", "e", "d", "c", "b", "a"},
			want: tally{acked: 7, missing: 7, lost: []string{"a", "b", "c", "d", "e"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := newLedger()
			for _, id := range c.early {
				l.deliver(id)
			}
			for _, id := range c.acked {
				l.ack(id)
			}
			for _, id := range c.delivered {
				l.deliver(id)
			}
			got := l.tally()
			if got.acked != c.want.acked || got.takes != c.want.takes || got.distinct != c.want.distinct ||
				got.duplicates != c.want.duplicates || got.missing != c.want.missing || got.unacked != c.want.unacked ||
				!slices.Equal(got.lost, c.want.lost) {
				t.Fatalf("tally = %+v, want %+v", got, c.want)
			}
			if b := l.backlog(); b != c.want.missing {
				t.Fatalf("backlog = %d, want %d (the missing ones)", b, c.want.missing)
			}
		})
	}
}

func TestAckedID(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"the gate's acknowledgement", `{"result":"queued","delivery_id":"019ca9450a00ed014085b7273e29"}` + "\n", "019ca9450a00ed014085b7273e29"},
		{"another result", `{"result":"duplicate","delivery_id":"x"}`, ""},
		{"no id", `{"result":"queued"}`, ""},
		{"unterminated", `{"result":"queued","delivery_id":"abc`, ""},
		{"an escape", `{"result":"queued","delivery_id":"a\"b"}`, ""},
		{"not JSON", `ok`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ackedID([]byte(c.body)); got != c.want {
				t.Fatalf("ackedID(%s) = %q, want %q", c.body, got, c.want)
			}
		})
	}
}
