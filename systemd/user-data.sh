#!/usr/bin/env bash
# EC2 user-data: install eipd as a systemd service and wait until it is ready.
# Idempotent: running it again converges (a file is replaced only when its
# content differs, and the service restarts only then). Needs curl, sha256sum,
# systemd, and the AWS CLI for s3:// sources. Amazon Linux 2023 has them all.
set -euo pipefail

# --- settings ---
# Where you host the binary (docs/install.md): https://… or s3://bucket/key,
# e.g. s3://my-bucket/eipd/v1.2.3/eipd-linux-{arch}. {arch} becomes amd64 or
# arm64 to match this instance. Required.
EIPD_BINARY_URL=""
# sha256 of the binary per architecture, from the release's SHA256SUMS
# (make dist). Required for this instance's architecture, unless
# EIPD_ALLOW_UNVERIFIED=1 (or true; testing only) installs whatever was
# downloaded.
EIPD_BINARY_SHA256_AMD64=""
EIPD_BINARY_SHA256_ARM64=""
EIPD_ALLOW_UNVERIFIED=0
# Written to /etc/default/eipd; see systemd/eipd.env for every variable.
EIPD_GROUP="proxy-prod"
EIPD_ALLOCATION_ID=""
# HAProxy's monitor-uri as deploy/haproxy/user-data.sh installs it: it fails
# while no backend server is up (docs/health-checks.md).
EIPD_HEALTH_CHECK="http://127.0.0.1:80/haproxy-health"
# Status listener; the readiness wait below asks its /readyz.
EIPD_LISTEN=":9380"
# Auto Scaling termination lifecycle hook that eipd completes after handing
# its EIPs off (empty: none; the hook then times out by itself).
EIPD_LIFECYCLE_HOOK=""
# Have the Auto Scaling group replace this instance when its own health check
# stays down for EIPD_ASG_HEALTH_AFTER (true or false; empty: eipd's default,
# off). See docs/health-checks.md.
EIPD_ASG_HEALTH=""
EIPD_ASG_HEALTH_AFTER=""
# More lines for /etc/default/eipd, one KEY=value per line.
EIPD_EXTRA_ENV=""
# Seconds to wait for /readyz (identity known, own health check up).
EIPD_READY_TIMEOUT=180
# --- end of settings ---

log() { printf 'eipd user-data: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"
[ -n "$EIPD_GROUP" ] || die "EIPD_GROUP is empty"
[ -n "$EIPD_BINARY_URL" ] || die "EIPD_BINARY_URL is empty: set it to where you host the eipd binary (see docs/install.md)"

case "$(uname -m)" in
x86_64) arch=amd64 sha=$EIPD_BINARY_SHA256_AMD64 ;;
aarch64 | arm64) arch=arm64 sha=$EIPD_BINARY_SHA256_ARM64 ;;
*) die "unsupported architecture $(uname -m)" ;;
esac
url=${EIPD_BINARY_URL//\{arch\}/$arch}
case "$EIPD_ALLOW_UNVERIFIED" in
1 | true) unverified=1 ;;
*) unverified=0 ;;
esac
if [ -z "$sha" ] && [ "$unverified" != 1 ]; then
	die "no checksum for the $arch binary: set EIPD_BINARY_SHA256_${arch^^} to its line in SHA256SUMS, or EIPD_ALLOW_UNVERIFIED=1 to install it unverified (testing only)"
fi

# EIPD_INSTALL_ROOT (environment, not a setting) installs under another
# directory than /, for tests (deploy/userdata_test.go).
root=${EIPD_INSTALL_ROOT:-}
bin=$root/usr/local/bin/eipd
unit=$root/etc/systemd/system/eipd.service
envfile=$root/etc/default/eipd
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
changed=0

# install_if_changed SRC DST MODE: replace DST only when its content differs.
install_if_changed() {
	if [ -f "$2" ] && cmp -s "$1" "$2"; then
		return 1
	fi
	install -D -m "$3" -o root -g root "$1" "$2"
	log "installed $2"
}

# Binary: skip the download when the installed one already has the wanted sum.
if [ -n "$sha" ] && [ -x "$bin" ] && [ "$(sha256sum "$bin" | cut -d' ' -f1)" = "$sha" ]; then
	log "$bin is already at $sha"
else
	case "$url" in
	s3://*)
		aws s3 cp --only-show-errors "$url" "$tmp/eipd" ||
			die "cannot download $url: the instance role needs s3:GetObject on it (the example stack grants it on BinaryBucket/BinaryKeyPrefix), and the instance a way to S3 (an S3 gateway endpoint, or a public IPv4 address)"
		;;
	https://*)
		curl -fsSL --proto '=https' --retry 5 --retry-connrefused -o "$tmp/eipd" "$url" ||
			die "cannot download $url: the instance needs a way to that server (a public IPv4 address or NAT; VPC endpoints do not reach it)"
		;;
	*) die "EIPD_BINARY_URL must be https:// or s3://, got $url" ;;
	esac
	got=$(sha256sum "$tmp/eipd" | cut -d' ' -f1)
	if [ -n "$sha" ]; then
		[ "$got" = "$sha" ] || die "checksum mismatch for $url: got $got, want $sha"
	else
		log "WARNING: EIPD_ALLOW_UNVERIFIED=$EIPD_ALLOW_UNVERIFIED: installing $url unverified (sha256 $got)"
	fi
	if install_if_changed "$tmp/eipd" "$bin" 0755; then changed=1; fi
fi
"$bin" version >&2 || die "$bin does not run on this instance"

# The unit joins group haproxy to read HAProxy's stats socket; systemd refuses
# to start it when the group does not exist (HAProxy not installed yet).
getent group haproxy >/dev/null || groupadd --system haproxy

cat >"$tmp/eipd.service" <<'UNIT'
# eipd: keeps this cluster's Elastic IPs on a healthy member.
# Install: /etc/systemd/system/eipd.service (systemd/user-data.sh does it).
# Settings: /etc/default/eipd (see systemd/eipd.env); EIPD_GROUP is required.
[Unit]
Description=eipd Elastic IP failover daemon
Documentation=https://github.com/eipd/eipd/blob/main/docs/operations.md
# IMDS and the EC2 API must be reachable before the first reconcile.
Wants=network-online.target
After=network-online.target
# Health checks probe the local proxy; start after it when it is a unit here.
After=haproxy.service
# Give up after 5 crashes in 2 minutes instead of flapping the EIP forever.
StartLimitIntervalSec=120
StartLimitBurst=5

[Service]
# READY=1 is sent after identity and the first reconcile; WATCHDOG=1 from the
# main loop, so a wedged loop is killed and restarted, and peers take over.
Type=notify
NotifyAccess=main
WatchdogSec=30s
ExecStart=/usr/local/bin/eipd run
EnvironmentFile=-/etc/default/eipd
Restart=on-failure
RestartSec=2s
# SIGTERM makes eipd hand its EIPs to a ready peer within --stop-timeout (20s
# by default). Stop must outlast it, or systemd kills the handoff half-way.
KillSignal=SIGTERM
TimeoutStopSec=30s
TimeoutStartSec=90s

# No state on disk: a fresh uid per start is enough. HAProxy's stats socket is
# usually group haproxy, mode 660: joining the group lets the haproxy:// check
# read it (user-data.sh creates the group when HAProxy is not installed yet).
DynamicUser=yes
SupplementaryGroups=haproxy
# The control socket: unix:/run/eipd/eipd.sock (mode 0600) by default.
# Only eipd (and root) may enter the directory, so only root runs eipd handoff.
RuntimeDirectory=eipd
RuntimeDirectoryMode=0750
UMask=0077
# PrivateUsers= is left off: in a user namespace the haproxy group above is
# unmapped, and the HAProxy socket check would depend on kernel details.

NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateMounts=yes
PrivateTmp=yes
PrivateDevices=yes
DevicePolicy=closed
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
# No ProcSubset=pid: it hides /proc/stat, which the process collector needs
# for the boot time behind process_start_time_seconds (restarts on the
# dashboard). ProtectProc=invisible still hides other users' processes.
KeyringMode=private
# TCP/HTTP to IMDS, EC2 and peers; AF_UNIX for the HAProxy socket and sd_notify.
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
MemoryMax=256M
TasksMax=64

[Install]
WantedBy=multi-user.target
UNIT
if install_if_changed "$tmp/eipd.service" "$unit" 0644; then
	changed=1
	systemctl daemon-reload
fi

{
	echo "# Written by eipd user-data; see systemd/eipd.env for every variable."
	echo "EIPD_GROUP=$EIPD_GROUP"
	[ -z "$EIPD_ALLOCATION_ID" ] || echo "EIPD_ALLOCATION_ID=$EIPD_ALLOCATION_ID"
	[ -z "$EIPD_HEALTH_CHECK" ] || echo "EIPD_HEALTH_CHECK=$EIPD_HEALTH_CHECK"
	[ -z "$EIPD_LISTEN" ] || echo "EIPD_LISTEN=$EIPD_LISTEN"
	[ -z "$EIPD_LIFECYCLE_HOOK" ] || echo "EIPD_LIFECYCLE_HOOK=$EIPD_LIFECYCLE_HOOK"
	[ -z "$EIPD_ASG_HEALTH" ] || echo "EIPD_ASG_HEALTH=$EIPD_ASG_HEALTH"
	[ -z "$EIPD_ASG_HEALTH_AFTER" ] || echo "EIPD_ASG_HEALTH_AFTER=$EIPD_ASG_HEALTH_AFTER"
	[ -z "$EIPD_EXTRA_ENV" ] || printf '%s\n' "$EIPD_EXTRA_ENV"
} >"$tmp/eipd.env"
if install_if_changed "$tmp/eipd.env" "$envfile" 0644; then changed=1; fi

# A restart of a holder hands its EIPs to a peer first (SIGTERM), so restart
# only when something changed.
if [ "$changed" -eq 1 ] && systemctl is-active --quiet eipd.service; then
	systemctl restart eipd.service
fi
# Type=notify: start returns once eipd has its identity and a first reconcile.
systemctl enable --now eipd.service

# /readyz on the configured listener: a wildcard host (":9380", 0.0.0.0,
# [::]) is asked on loopback, any other host as given.
listen=${EIPD_LISTEN:-:9380}
port=${listen##*:}
host=${listen%:*}
case "$host" in
"" | 0.0.0.0 | "[::]") host=127.0.0.1 ;;
esac
ready_url="http://$host:$port/readyz"
deadline=$((SECONDS + EIPD_READY_TIMEOUT))
until curl -fsS -o /dev/null --max-time 2 "$ready_url"; do
	if [ "$SECONDS" -ge "$deadline" ]; then
		systemctl --no-pager status eipd.service >&2 || true
		"$bin" status >&2 || true
		die "eipd not ready after ${EIPD_READY_TIMEOUT}s ($ready_url); see journalctl -u eipd"
	fi
	sleep 2
done
"$bin" status >&2 || true
log "eipd is ready"
