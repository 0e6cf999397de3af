package harness

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// InstanceIPs are the private IPs the emulator gives n instances from
// firstIP on: one loopback address each.
func InstanceIPs(firstIP string, n int) []string {
	base := net.ParseIP(firstIP).To4()
	out := make([]string, n)
	for i := range out {
		ip := make(net.IP, 4)
		copy(ip, base)
		ip[3] += byte(i)
		out[i] = ip.String()
	}
	return out
}

// ReservePort finds a TCP port free on every address of ips and returns it
// with its listeners still bound: the caller closes them (CloseAll) when
// whoever is to listen there starts, so that nothing else (another run's
// group on the same addresses, the emulator's own listeners bound to port
// 0) is handed the port meanwhile. The kernel picks a port free on the
// first address only; where another address has it taken, it tries again.
func ReservePort(ips []string) (int, []net.Listener, error) {
	var lastErr error
	for try := 0; try < 50; try++ {
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			return 0, nil, err
		}
		port := first.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				lastErr = err
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == len(ips) {
			return port, lns, nil
		}
		CloseAll(lns)
	}
	return 0, nil, fmt.Errorf("no TCP port free on all of %s after 50 tries: %w", strings.Join(ips, ", "), lastErr)
}

// CloseAll closes every listener.
func CloseAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}
