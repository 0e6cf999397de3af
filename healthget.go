package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
)

// getOnce sends req on a connection of its own and returns the response;
// the body closes the connection. `eipd healthcheck`, which a container
// runtime starts every few seconds, only ever GETs the local daemon's
// /healthz over plain HTTP: for that, net/http's Transport (connection
// pool, HTTP/2 negotiation, proxy lookup, two goroutines per connection)
// costs about 0.6 MiB of RSS and does nothing useful. Other schemes go
// through http.DefaultClient.
func getOnce(ctx context.Context, req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		return http.DefaultClient.Do(req)
	}
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req.Close = true // Connection: close; the server ends the body
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	resp.Body = readCloser{resp.Body, conn}
	return resp, nil
}

// readCloser reads the response body and closes the connection under it.
type readCloser struct {
	io.Reader
	conn net.Conn
}

func (r readCloser) Close() error { return r.conn.Close() }
