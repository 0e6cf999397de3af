package eip

import (
	"context"
	"errors"
	"strings"
)

// ENIAssociation is one public IPv4 address on this instance's primary ENI
// and the private IP it is associated with.
type ENIAssociation struct {
	PublicIP, PrivateIP string
}

// Associations lists the public IPv4 addresses associated with this
// instance's primary ENI and the private IP each one is on (IMDS
// network/interfaces/macs/<mac>/public-ipv4s, then ipv4-associations/<ip>).
// It is a local, free and current view: the leader learns from it that an
// EIP was moved here or away without reading the EC2 API, and which of its
// private IPs already carry an EIP. None associated → empty, nil.
func (m *Metadata) Associations(ctx context.Context) ([]ENIAssociation, error) {
	mac, err := m.get(ctx, "mac")
	if err != nil {
		if errors.Is(err, errNoItem) {
			return nil, nil
		}
		return nil, err
	}
	base := "network/interfaces/macs/" + mac + "/"
	body, err := m.get(ctx, base+"public-ipv4s")
	if errors.Is(err, errNoItem) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []ENIAssociation
	for _, pub := range strings.Fields(body) {
		priv, err := m.get(ctx, base+"ipv4-associations/"+pub)
		if errors.Is(err, errNoItem) {
			continue // moved away between the two reads
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ENIAssociation{PublicIP: pub, PrivateIP: strings.TrimSpace(priv)})
	}
	return out, nil
}

// PublicIPsOf are the public IPs of as.
func PublicIPsOf(as []ENIAssociation) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.PublicIP)
	}
	return out
}
