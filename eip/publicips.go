package eip

import (
	"context"
	"errors"
	"strings"
)

// PublicIPs lists the public IPv4 addresses associated with this instance's
// primary ENI (IMDS network/interfaces/macs/<mac>/public-ipv4s). It is a
// local, free signal that an EIP has been moved here, so the leader reads
// the EC2 API only when something changed. None associated → empty, nil.
func (m *Metadata) PublicIPs(ctx context.Context) ([]string, error) {
	mac, err := m.get(ctx, "mac")
	if err != nil {
		if errors.Is(err, errNoItem) {
			return nil, nil
		}
		return nil, err
	}
	body, err := m.get(ctx, "network/interfaces/macs/"+mac+"/public-ipv4s")
	if errors.Is(err, errNoItem) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return strings.Fields(body), nil
}
