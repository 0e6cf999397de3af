package groupview

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const alloc = "eipalloc-0a1b2c3d4e5f60718"

func sampleView() View {
	return View{
		Title: "eipd demo · group demo",
		Notes: []string{"phase 2/6 proxy-killed"},
		EIPs:  []EIP{{AllocationID: alloc, PublicIP: "198.51.100.10", Holders: []string{"i-bbb"}, Term: "2.1", AssociatedTo: "i-bbb"}},
		Members: []Member{
			{InstanceID: "i-aaa", AZ: "us-east-1a", PrivateIP: "127.0.0.11", Answered: true, Health: "down",
				Roles: map[string]string{alloc: "unhealthy"}},
			{InstanceID: "i-bbb", AZ: "us-east-1b", PrivateIP: "127.0.0.12", Answered: true, Health: "up", Coordinator: true,
				Roles: map[string]string{alloc: "holder"}},
			{InstanceID: "i-ccc", AZ: "us-east-1c", PrivateIP: "127.0.0.13", Problem: "connection refused"},
			{InstanceID: "i-ddd", AZ: "us-east-1a", PrivateIP: "127.0.0.14", EC2State: "terminated"},
		},
		Client: &Client{Target: "127.0.0.1:40000", OK: 12, Failed: 8, TotalOK: 100, TotalFailed: 40, FailingSince: t0.Add(-1500 * time.Millisecond)},
		Moves: []Move{
			{Time: t0.Add(-10 * time.Second), AllocationID: alloc, Reason: "takeover-unassociated", To: "i-aaa", Term: "1.1", Duration: 210 * time.Millisecond},
			{Time: t0.Add(-time.Second), AllocationID: alloc, Reason: "handoff-unhealthy", From: "i-aaa", To: "i-bbb", Term: "2.1", Duration: -1},
		},
	}
}

func TestTablePlain(t *testing.T) {
	got := Table(sampleView(), t0, Style{})
	want := `eipd demo · group demo  12:00:00
phase 2/6 proxy-killed

EIP            ALLOCATION                  HOLDER  TERM  ASSOCIATED TO
198.51.100.10  eipalloc-0a1b2c3d4e5f60718  i-bbb   2.1   i-bbb

INSTANCE  AZ          PRIVATE IP  ROLE       HEALTH                          COORDINATES
i-aaa     us-east-1a  127.0.0.11  unhealthy  down                            -
i-bbb     us-east-1b  127.0.0.12  holder     up                              yes
i-ccc     us-east-1c  127.0.0.13  -          no answer (connection refused)  -
i-ddd     us-east-1a  127.0.0.14  -          instance terminated             -

CLIENT 127.0.0.1:40000  last second 12 ok, 8 failed  total 100 ok, 40 failed  failing for 1.50s

MOVES
11:59:50.000  198.51.100.10  takeover-unassociated  - → i-aaa      term 1.1  210ms
11:59:59.000  198.51.100.10  handoff-unhealthy      i-aaa → i-bbb  term 2.1  ?
`
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

var escape = regexp.MustCompile("\x1b\\[[0-9;]*m")

// Colours are painted after padding: stripping them gives the plain table.
func TestTableColorKeepsColumns(t *testing.T) {
	v := sampleView()
	colored := Table(v, t0, Style{Color: true})
	if !strings.Contains(colored, "\x1b[32mi-bbb") || !strings.Contains(colored, "\x1b[31mno answer") ||
		!strings.Contains(colored, "\x1b[1myes") {
		t.Errorf("holder not green, missing member not red or coordinator not bold:\n%q", colored)
	}
	if plain := escape.ReplaceAllString(colored, ""); plain != Table(v, t0, Style{}) {
		t.Errorf("coloured table without escapes differs from the plain one:\n%s", plain)
	}
	if strings.Contains(Table(v, t0, Style{}), "\x1b") {
		t.Error("plain table holds an escape sequence")
	}
}

// A watcher of a real group does not know the association: no column.
func TestTableWithoutAssociation(t *testing.T) {
	v := sampleView()
	v.EIPs[0].AssociatedTo = ""
	got := Table(v, t0, Style{})
	if strings.Contains(got, "ASSOCIATED TO") || !strings.Contains(got, "198.51.100.10  eipalloc-0a1b2c3d4e5f60718  i-bbb   2.1\n") {
		t.Errorf("table:\n%s", got)
	}
}

func TestTableSplitNoneSeveralEIPsAndMoveCap(t *testing.T) {
	v := sampleView()
	other := "eipalloc-99"
	v.EIPs = []EIP{
		{AllocationID: alloc, PublicIP: "198.51.100.10", Holders: []string{"i-aaa", "i-bbb"}, Term: "3.1", AssociatedTo: "i-bbb"},
		{AllocationID: other, Unassociated: true},
	}
	v.Members[0].Roles = map[string]string{alloc: "holder", other: "standby"}
	v.Members[1].Roles = map[string]string{alloc: "holder"}
	v.Client = nil
	for i := 0; i < 5; i++ {
		v.Moves = append(v.Moves, Move{Time: t0.Add(time.Duration(i) * time.Second), AllocationID: other, To: "i-aaa", Duration: 4321 * time.Microsecond})
	}
	got := Table(v, t0, Style{MaxMoves: 3})
	for _, want := range []string{
		"SPLIT: i-aaa, i-bbb", "eipalloc-99                 none", "nothing", "ROLE PER EIP",
		"holder / standby", "holder / -", "(4 earlier)", "12:00:04.000  eipalloc-99", "4.3ms",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	// An EIP nobody reports a term for shows "-".
	if !regexp.MustCompile(`(?m)^-\s+eipalloc-99\s+none\s+-\s+nothing$`).MatchString(got) {
		t.Errorf("the unassociated EIP's row lacks the unknown term:\n%s", got)
	}
	if strings.Contains(got, "CLIENT") || strings.Contains(got, "12:00:01.000") {
		t.Errorf("table shows a client or a move beyond the cap:\n%s", got)
	}
}

func TestChanges(t *testing.T) {
	base := sampleView()
	base.Client.FailingSince = time.Time{}
	mod := func(f func(v *View)) View {
		v := sampleView()
		v.Client.FailingSince = time.Time{}
		v.Members = slices.Clone(v.Members)
		v.EIPs = slices.Clone(v.EIPs)
		f(&v)
		return v
	}
	cases := []struct {
		name string
		cur  View
		want []string
	}{
		{"nothing", base, nil},
		{"holder moves", mod(func(v *View) {
			v.Members[1].Roles = map[string]string{alloc: "standby"}
			v.Members[0].Roles = map[string]string{alloc: "holder"}
			v.Members[0].Health = "up"
			v.EIPs[0].Holders, v.EIPs[0].Term, v.EIPs[0].AssociatedTo = []string{"i-aaa"}, "2.2", "i-aaa"
			v.Moves = append(v.Moves, Move{Time: t0, AllocationID: alloc, Reason: "handoff-manual", From: "i-bbb", To: "i-aaa", Term: "2.2", Duration: 50 * time.Millisecond})
		}), []string{
			"i-aaa: health up", "i-aaa: role holder for 198.51.100.10", "i-bbb: role standby for 198.51.100.10",
			"198.51.100.10: held by i-aaa, term 2.2", "198.51.100.10: associated with i-aaa",
			"move 198.51.100.10 handoff-manual i-bbb → i-aaa, term 2.2, decided → associated 50ms",
		}},
		{"coordinator changes", mod(func(v *View) {
			v.Members[0].Coordinator, v.Members[1].Coordinator = true, false
		}), []string{"i-aaa: coordinates the group", "i-bbb: no longer coordinates the group"}},
		{"coordinator steps down, none takes over", mod(func(v *View) {
			v.Members[1].Coordinator = false
		}), []string{"i-bbb: no longer coordinates the group"}},
		{"held, term unknown", mod(func(v *View) {
			v.EIPs[0].Holders, v.EIPs[0].Term = []string{"i-aaa"}, ""
		}), []string{"198.51.100.10: held by i-aaa, term -"}},
		{"split and gone", mod(func(v *View) {
			v.EIPs[0].Holders = []string{"i-aaa", "i-bbb"}
			v.Members = v.Members[:3]
		}), []string{"i-ddd: no longer a running member of the group", "198.51.100.10: SPLIT: i-aaa, i-bbb all report holding it"}},
		{"no holder, unassociated, status lost", mod(func(v *View) {
			v.EIPs[0].Holders, v.EIPs[0].AssociatedTo, v.EIPs[0].Unassociated = nil, "", true
			v.Members[1] = Member{InstanceID: "i-bbb", AZ: "us-east-1b", PrivateIP: "127.0.0.12", EC2State: "terminated"}
			v.Members[0].Draining = "handoff-draining"
		}), []string{
			"i-aaa: draining (handoff-draining)", "i-bbb: instance terminated",
			"198.51.100.10: no member reports holding it", "198.51.100.10: associated with nothing",
		}},
		{"client fails", mod(func(v *View) { v.Client.FailingSince = t0.Add(-time.Second) }), []string{"client: requests to the EIP fail"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Changes(base, c.cur, t0); !slices.Equal(got, c.want) {
				t.Errorf("Changes:\n got %q\nwant %q", got, c.want)
			}
		})
	}

	t.Run("client recovers", func(t *testing.T) {
		prev := sampleView()
		cur := sampleView()
		cur.Client.FailingSince = time.Time{}
		want := []string{"client: requests succeed again, after failing for 1.50s"}
		if got := Changes(prev, cur, t0); !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("first view", func(t *testing.T) {
		got := Changes(View{}, base, t0)
		for _, want := range []string{
			"i-aaa: member (us-east-1a, 127.0.0.11)", "i-aaa: health down", "i-bbb: coordinates the group",
			"i-aaa: role unhealthy for 198.51.100.10", "i-ccc: /status does not answer (connection refused)",
			"i-ddd: instance terminated", "198.51.100.10: held by i-bbb, term 2.1",
			"move 198.51.100.10 takeover-unassociated - → i-aaa, term 1.1, decided → associated 210ms",
		} {
			if !slices.Contains(got, want) {
				t.Errorf("first view lacks %q: %q", want, got)
			}
		}
		for _, line := range got {
			if strings.Contains(line, "\x1b") {
				t.Errorf("escape in %q", line)
			}
		}
	})
}
