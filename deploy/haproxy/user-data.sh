#!/usr/bin/env bash
# EC2 user-data: HAProxy for an eipd group, the way the example stack's
# cfn-init installs it: the package, deploy/haproxy/haproxy.cfg verbatim
# (deploy/haproxy_test.go keeps the two equal) and its three settings in a
# systemd drop-in, checked with haproxy -c, then started. Run it first in the
# user data of the by-hand paths (docs/install.md): before systemd/user-data.sh
# on the proxies, or on the ECS container instances. Idempotent; Amazon Linux
# 2023.
set -euo pipefail

# --- settings ---
# The port clients reach through the EIP.
PROXY_PORT=80
# The AWS Cloud Map SRV name of the backend service (docs/install.md).
BACKEND_SRV="_web._tcp.internal.example"
# monitor-uri fails while fewer backend servers are up; 0: it answers while
# HAProxy runs.
MONITOR_MIN_UP=1
# --- end of settings ---

log() { printf 'haproxy user-data: %s\n' "$*" >&2; }

# EIPD_INSTALL_ROOT (environment, not a setting) installs under another
# directory than /, for tests (deploy/haproxy_test.go).
root=${EIPD_INSTALL_ROOT:-}
command -v haproxy >/dev/null || dnf install -y haproxy
install -d -m 0755 "$root/etc/haproxy" "$root/etc/systemd/system/haproxy.service.d"

cat >"$root/etc/haproxy/haproxy.cfg" <<'HAPROXY_CFG'
# HAProxy for an eipd group: the proxy that the Elastic IP points at.
#
# Backends are found the way ECS services publish themselves: an ECS service
# with service discovery (AWS Cloud Map) registers each task in a private DNS
# namespace, and HAProxy resolves the SRV records of that name through the
# VPC's DNS server, adding and removing servers as tasks come and go. The SRV
# records carry each task's port, so bridge and awsvpc tasks both work. Cloud
# Map answers a query with at most eight healthy records: beyond eight tasks
# each answer is a different subset, and the server list changes with it.
#
# Three settings come from the environment (HAProxy expands "${VAR}"), so
# this file is installed as it is (deploy/cloudformation/eipd.yaml writes them
# to a systemd drop-in, /etc/systemd/system/haproxy.service.d/eipd.conf):
#   PROXY_PORT      the port clients reach through the EIP, e.g. 80
#   BACKEND_SRV     the Cloud Map SRV name of the backend service, e.g.
#                   _web._tcp.internal.example. HAProxy treats a name that
#                   starts with an underscore as an SRV query, so create the
#                   Cloud Map service with such a name (see docs/install.md).
#   MONITOR_MIN_UP  the monitor-uri fails (503) while fewer backend servers
#                   are up, e.g. 1: a proxy with no working backend is not
#                   healthy, so the EIP neither stays on it nor moves to it.
#                   0: it answers 200 whenever HAProxy runs.
#
# What eipd uses:
#   monitor-uri /haproxy-health  answers 200 while HAProxy runs and at least
#       MONITOR_MIN_UP servers of backend web are up: the health check
#       http://127.0.0.1:<PROXY_PORT>/haproxy-health, which standbys also aim
#       at the holder's private IP;
#   stats socket                 the haproxy:// check
#       (haproxy:///run/haproxy/admin.sock?backend=web&min-up=1) reads server
#       states from it; eipd's unit joins group haproxy to read it.

global
	log /dev/log local0
	user haproxy
	group haproxy
	stats socket /run/haproxy/admin.sock mode 660 group haproxy level user
	stats timeout 30s

defaults
	mode http
	log global
	option httplog
	option dontlognull
	timeout connect 5s
	timeout client 30s
	timeout server 30s
	timeout http-request 10s

# The VPC's Amazon DNS server answers at 169.254.169.253 in every VPC; it
# resolves Cloud Map private namespaces of the VPC.
resolvers vpc
	nameserver amazon 169.254.169.253:53
	# An SRV answer lists every task: allow more than 512 bytes (EDNS0).
	accepted_payload_size 8192
	resolve_retries 3
	timeout resolve 1s
	timeout retry 1s
	# Re-resolve every 10s; keep a server that vanished from DNS for 30s.
	hold valid 10s
	hold obsolete 30s

frontend proxy
	bind "*:${PROXY_PORT}"
	monitor-uri /haproxy-health
	monitor fail if { nbsrv(web) lt "${MONITOR_MIN_UP}" }
	default_backend web

backend web
	balance roundrobin
	# "check" is a TCP connect to each task; for an HTTP check of your
	# application add e.g. "option httpchk GET /health".
	# Up to 20 tasks. init-addr none: start (and pass haproxy -c) before DNS
	# answers; servers without an address stay in maintenance until resolved.
	server-template task 20 "${BACKEND_SRV}" resolvers vpc resolve-prefer ipv4 init-addr none check
HAPROXY_CFG

cat >"$root/etc/systemd/system/haproxy.service.d/eipd.conf" <<DROPIN
# Settings of /etc/haproxy/haproxy.cfg (deploy/haproxy/haproxy.cfg).
[Service]
Environment=PROXY_PORT=$PROXY_PORT
Environment=BACKEND_SRV=$BACKEND_SRV
Environment=MONITOR_MIN_UP=$MONITOR_MIN_UP
# For the stats socket /run/haproxy/admin.sock.
RuntimeDirectory=haproxy
DROPIN

# The settings as HAProxy reads them, for its check of the file.
(
	export PROXY_PORT BACKEND_SRV MONITOR_MIN_UP
	haproxy -c -f "$root/etc/haproxy/haproxy.cfg"
)
systemctl daemon-reload
systemctl enable haproxy.service
systemctl restart haproxy.service
log "HAProxy runs on port $PROXY_PORT over $BACKEND_SRV"
