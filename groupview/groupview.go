// Package groupview renders the state of an eipd group (members, EIPs,
// the traffic of a client, moves) for people: as the table that
// `eipd demo` and `eipd status --watch` redraw on a terminal, and as plain
// lines saying what changed, for pipes and logs. It only formats: callers
// gather the state.
package groupview

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Roles as the daemons report them in /status; any other value is shown
// as is.
const (
	RoleHolder     = "holder"
	RoleStandby    = "standby"
	RoleDraining   = "draining"
	RoleUnhealthy  = "unhealthy"
	RoleUnverified = "unverified"
)

// View is one picture of a group.
type View struct {
	Title   string   // first line
	Notes   []string // lines under the title (phase, hints)
	EIPs    []EIP
	Members []Member
	Client  *Client // nil: no client to show
	Moves   []Move  // oldest first
}

// EIP is one managed Elastic IP.
type EIP struct {
	AllocationID string
	PublicIP     string
	// Holders are the members whose /status reports role holder for it:
	// one in a healthy group, none during a move, two or more is a split.
	Holders []string
	Term    string // "epoch.seq"; "" unknown
	// AssociatedTo is the instance the EIP is associated with, when the
	// caller knows it (the emulator's truth in the demo); "" with
	// Unassociated false means unknown.
	AssociatedTo string
	Unassociated bool
}

// Member is one instance of the group.
type Member struct {
	InstanceID string
	AZ         string
	PrivateIP  string
	// EC2State is the instance state when it is not running
	// ("terminated", "stopped"); "" for running.
	EC2State string
	// Answered: its eipd /status answered; Problem says why not.
	Answered bool
	Problem  string
	Health   string // own health check: up, down, unknown
	Draining string // why it is draining, "" when not
	// Coordinator: it says it coordinates the group (makes every move).
	Coordinator bool
	Roles       map[string]string // allocation ID → role
}

// Client is what a client of the EIP sees.
type Client struct {
	Target      string // the address it connects to
	OK, Failed  int    // requests in the last second
	TotalOK     int
	TotalFailed int
	// FailingSince is when the current run of failed requests began;
	// zero while requests succeed.
	FailingSince time.Time
}

// Move is one change of the instance an EIP is associated with.
type Move struct {
	Time         time.Time // when the association happened
	AllocationID string
	Reason       string // handoff-unhealthy, takeover-stale, ...; "" unknown
	From, To     string // instance IDs; From "" when the EIP was associated with nothing before
	Term         string // the term the move wrote ("epoch.seq"); "" unknown
	// Duration is from the decision to move to the association; negative
	// when unknown.
	Duration time.Duration
}

// Style says how to draw.
type Style struct {
	Color    bool // ANSI colours (terminals only)
	MaxMoves int  // moves shown in the table, newest last; 0 = 8
}

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiDim    = "\x1b[2m"
)

type cell struct {
	text  string
	color string
}

// Table renders the whole view at time now; lines end with "\n". With
// Color false the text holds no escape sequence.
func Table(v View, now time.Time, st Style) string {
	var b strings.Builder
	paint := func(s, color string) string {
		if !st.Color || color == "" {
			return s
		}
		return color + s + ansiReset
	}
	title := v.Title
	if title == "" {
		title = "eipd group"
	}
	b.WriteString(paint(title, ansiBold) + "  " + now.Format("15:04:05") + "\n")
	for _, n := range v.Notes {
		b.WriteString(n + "\n")
	}
	b.WriteString("\n")

	// The association is shown only when the caller knows it (the demo
	// reads the emulator; a watcher of a real group has only the daemons).
	knowsAssoc := false
	for _, e := range v.EIPs {
		knowsAssoc = knowsAssoc || e.AssociatedTo != "" || e.Unassociated
	}
	rows := [][]cell{{{"EIP", ansiBold}, {"ALLOCATION", ansiBold}, {"HOLDER", ansiBold}, {"TERM", ansiBold}}}
	if knowsAssoc {
		rows[0] = append(rows[0], cell{"ASSOCIATED TO", ansiBold})
	}
	for _, e := range v.EIPs {
		holder := cell{"none", ansiYellow}
		switch len(e.Holders) {
		case 0:
		case 1:
			holder = cell{e.Holders[0], ansiGreen}
		default:
			holder = cell{"SPLIT: " + strings.Join(e.Holders, ", "), ansiRed}
		}
		assoc := cell{"?", ""}
		switch {
		case e.AssociatedTo != "":
			assoc = cell{e.AssociatedTo, ""}
		case e.Unassociated:
			assoc = cell{"nothing", ansiRed}
		}
		row := []cell{{dash(e.PublicIP), ""}, {e.AllocationID, ""}, holder, {dash(e.Term), ""}}
		if knowsAssoc {
			row = append(row, assoc)
		}
		rows = append(rows, row)
	}
	writeRows(&b, rows, paint)
	b.WriteString("\n")

	roleHead := "ROLE"
	if len(v.EIPs) > 1 {
		roleHead = "ROLE PER EIP"
	}
	rows = [][]cell{{{"INSTANCE", ansiBold}, {"AZ", ansiBold}, {"PRIVATE IP", ansiBold}, {roleHead, ansiBold}, {"HEALTH", ansiBold}, {"COORDINATES", ansiBold}}}
	for _, m := range v.Members {
		role, health := memberCells(m, v.EIPs)
		coord := cell{"-", ""}
		if m.Coordinator {
			coord = cell{"yes", ansiBold}
		}
		rows = append(rows, []cell{{m.InstanceID, ""}, {dash(m.AZ), ""}, {dash(m.PrivateIP), ""}, role, health, coord})
	}
	writeRows(&b, rows, paint)

	if c := v.Client; c != nil {
		b.WriteString("\n")
		last := fmt.Sprintf("last second %d ok, %d failed", c.OK, c.Failed)
		color := ansiGreen
		if c.Failed > 0 {
			color = ansiRed
		}
		fmt.Fprintf(&b, "%s %s  %s  total %d ok, %d failed", paint("CLIENT", ansiBold), c.Target, paint(last, color), c.TotalOK, c.TotalFailed)
		if !c.FailingSince.IsZero() {
			b.WriteString("  " + paint(fmt.Sprintf("failing for %s", seconds(now.Sub(c.FailingSince))), ansiRed))
		}
		b.WriteString("\n")
	}

	if len(v.Moves) > 0 {
		b.WriteString("\n" + paint("MOVES", ansiBold) + "\n")
		max := st.MaxMoves
		if max <= 0 {
			max = 8
		}
		moves := v.Moves
		if len(moves) > max {
			fmt.Fprintf(&b, "(%d earlier)\n", len(moves)-max)
			moves = moves[len(moves)-max:]
		}
		rows = rows[:0]
		for _, mv := range moves {
			rows = append(rows, []cell{{mv.Time.Format("15:04:05.000"), ansiDim}, {eipName(v.EIPs, mv.AllocationID), ""},
				{dash(mv.Reason), ""}, {dash(mv.From) + " → " + mv.To, ""}, {termText(mv.Term), ""}, {durationText(mv.Duration), ""}})
		}
		writeRows(&b, rows, paint)
	}
	return b.String()
}

// memberCells are the ROLE and HEALTH cells of a member.
func memberCells(m Member, eips []EIP) (role, health cell) {
	switch {
	case m.EC2State != "" && m.EC2State != "running":
		return cell{"-", ""}, cell{"instance " + m.EC2State, ansiRed}
	case !m.Answered:
		h := "no answer"
		if m.Problem != "" {
			h += " (" + m.Problem + ")"
		}
		return cell{"-", ""}, cell{h, ansiRed}
	}
	var roles []string
	color := ""
	for _, e := range eips {
		r := m.Roles[e.AllocationID]
		if r == "" {
			r = "-"
		}
		roles = append(roles, r)
		if c := roleColor(r); c != "" && (color == "" || r == RoleHolder) {
			color = c
		}
	}
	if len(roles) == 0 {
		roles = []string{"-"}
	}
	health = cell{dash(m.Health), ""}
	if m.Health != "up" {
		health.color = ansiRed
	}
	if m.Draining != "" {
		health.text += ", draining (" + m.Draining + ")"
		health.color = ansiYellow
	}
	return cell{strings.Join(roles, " / "), color}, health
}

func roleColor(role string) string {
	switch role {
	case RoleHolder:
		return ansiGreen
	case RoleUnhealthy:
		return ansiRed
	case RoleDraining, RoleUnverified:
		return ansiYellow
	}
	return ""
}

// writeRows pads cells by their visible width, then paints them, so that
// colours never shift the columns.
func writeRows(b *strings.Builder, rows [][]cell, paint func(string, string) string) {
	var widths []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c.text))
		}
	}
	for _, r := range rows {
		var line strings.Builder
		for i, c := range r {
			line.WriteString(paint(c.text, c.color))
			if i < len(r)-1 {
				line.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c.text)+2))
			}
		}
		b.WriteString(line.String() + "\n")
	}
}

// Changes lists, one line each and without timestamps, what differs from
// prev to cur: members joining, leaving, answering or not, health,
// draining, coordinating and role changes, holders and associations of
// each EIP, new moves, and the client starting or stopping to fail.
// Compare with View{} to describe a first view.
func Changes(prev, cur View, now time.Time) []string {
	var out []string
	old := map[string]Member{}
	for _, m := range prev.Members {
		old[m.InstanceID] = m
	}
	seen := map[string]bool{}
	for _, m := range cur.Members {
		seen[m.InstanceID] = true
		p, ok := old[m.InstanceID]
		if !ok {
			// Described from nothing: every known field is news.
			out = append(out, fmt.Sprintf("%s: member (%s, %s)", m.InstanceID, dash(m.AZ), dash(m.PrivateIP)))
			p = Member{Answered: true}
		}
		if m.EC2State != p.EC2State {
			out = append(out, fmt.Sprintf("%s: instance %s", m.InstanceID, orRunning(m.EC2State)))
		}
		if m.Answered != p.Answered && m.EC2State == "" {
			if m.Answered {
				out = append(out, fmt.Sprintf("%s: /status answers", m.InstanceID))
			} else {
				out = append(out, fmt.Sprintf("%s: /status does not answer (%s)", m.InstanceID, dash(m.Problem)))
			}
		}
		if !m.Answered {
			continue
		}
		if m.Health != p.Health && m.Health != "" {
			out = append(out, fmt.Sprintf("%s: health %s", m.InstanceID, m.Health))
		}
		if m.Draining != p.Draining {
			if m.Draining != "" {
				out = append(out, fmt.Sprintf("%s: draining (%s)", m.InstanceID, m.Draining))
			} else {
				out = append(out, fmt.Sprintf("%s: no longer draining", m.InstanceID))
			}
		}
		if m.Coordinator != p.Coordinator {
			if m.Coordinator {
				out = append(out, fmt.Sprintf("%s: coordinates the group", m.InstanceID))
			} else {
				out = append(out, fmt.Sprintf("%s: no longer coordinates the group", m.InstanceID))
			}
		}
		for _, e := range cur.EIPs {
			r, pr := m.Roles[e.AllocationID], p.Roles[e.AllocationID]
			if r != pr && r != "" {
				out = append(out, fmt.Sprintf("%s: role %s for %s", m.InstanceID, r, eipName(cur.EIPs, e.AllocationID)))
			}
		}
	}
	for _, m := range prev.Members {
		if !seen[m.InstanceID] {
			out = append(out, fmt.Sprintf("%s: no longer a running member of the group", m.InstanceID))
		}
	}

	oldEIP := map[string]EIP{}
	for _, e := range prev.EIPs {
		oldEIP[e.AllocationID] = e
	}
	for _, e := range cur.EIPs {
		p, ok := oldEIP[e.AllocationID]
		name := eipName(cur.EIPs, e.AllocationID)
		if !ok || !slices.Equal(p.Holders, e.Holders) {
			switch len(e.Holders) {
			case 0:
				if ok {
					out = append(out, fmt.Sprintf("%s: no member reports holding it", name))
				}
			case 1:
				out = append(out, fmt.Sprintf("%s: held by %s, term %s", name, e.Holders[0], dash(e.Term)))
			default:
				out = append(out, fmt.Sprintf("%s: SPLIT: %s all report holding it", name, strings.Join(e.Holders, ", ")))
			}
		}
		if ok && (p.AssociatedTo != e.AssociatedTo || p.Unassociated != e.Unassociated) {
			switch {
			case e.AssociatedTo != "":
				out = append(out, fmt.Sprintf("%s: associated with %s", name, e.AssociatedTo))
			case e.Unassociated:
				out = append(out, fmt.Sprintf("%s: associated with nothing", name))
			}
		}
	}

	known := map[string]bool{}
	for _, m := range prev.Moves {
		known[moveKey(m)] = true
	}
	for _, m := range cur.Moves {
		if !known[moveKey(m)] {
			out = append(out, "move "+FormatMove(m, cur.EIPs))
		}
	}

	if c := cur.Client; c != nil {
		var was time.Time
		if prev.Client != nil {
			was = prev.Client.FailingSince
		}
		switch {
		case was.IsZero() && !c.FailingSince.IsZero():
			out = append(out, "client: requests to the EIP fail")
		case !was.IsZero() && c.FailingSince.IsZero():
			out = append(out, fmt.Sprintf("client: requests succeed again, after failing for %s", seconds(now.Sub(was))))
		}
	}
	return out
}

// FormatMove is one move on one line, e.g. "198.51.100.10 handoff-unhealthy
// i-a → i-b, term 2, decided → associated 0.21s".
func FormatMove(m Move, eips []EIP) string {
	s := fmt.Sprintf("%s %s %s → %s", eipName(eips, m.AllocationID), dash(m.Reason), dash(m.From), m.To)
	if m.Term != "" {
		s += ", term " + m.Term
	}
	return s + ", decided → associated " + durationText(m.Duration)
}

func moveKey(m Move) string {
	return m.AllocationID + "|" + m.To + "|" + m.Time.UTC().Format(time.RFC3339Nano)
}

// eipName is the public IP of an allocation when known, else its ID.
func eipName(eips []EIP, alloc string) string {
	for _, e := range eips {
		if e.AllocationID == alloc && e.PublicIP != "" {
			return e.PublicIP
		}
	}
	return alloc
}

func durationText(d time.Duration) string {
	if d < 0 {
		return "?"
	}
	return FormatDuration(d)
}

// FormatDuration shows a move's duration: milliseconds below a second
// (a decision carried out on loopback takes a few), else seconds.
func FormatDuration(d time.Duration) string {
	if d < time.Second {
		ms := float64(d.Round(100*time.Microsecond)) / float64(time.Millisecond)
		return strconv.FormatFloat(ms, 'f', -1, 64) + "ms"
	}
	return seconds(d)
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

func termText(t string) string {
	if t == "" {
		return "-"
	}
	return "term " + t
}

func orRunning(s string) string {
	if s == "" {
		return "running"
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
