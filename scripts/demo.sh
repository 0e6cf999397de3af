#!/usr/bin/env bash
# A three-instance eipd cluster on this machine, against the emulator
# (eipd sim): no AWS account, nothing leaves loopback. Each simulated
# instance gets a tiny web server standing in for HAProxy and its own eipd.
# The script shows the election, then a failover when the holder's web
# server dies, then a planned handoff on SIGTERM, each seen by a client of
# the EIP.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
json() { python3 -c "import json,sys; d=json.load(open('$work/sim.json')); print($1)"; }

say "building eipd"
go build -o "$work/eipd" .

say "starting the emulator: 3 instances, 1 EIP, group demo"
"$work/eipd" sim --instances 3 --eips 1 --group demo --target-port 8080 >"$work/sim.json" 2>"$work/sim.log" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/sim.json" ] && break; sleep 0.1; done
ec2=$(json "d['ec2_endpoint']")
ctl=$(json "d['control_endpoint']")
eip=$(json "d['eips'][0]['forward_addr']")
echo "EC2 API $ec2, EIP reachable at $eip"

declare -A web
for i in 0 1 2; do
	id=$(json "d['instances'][$i]['instance_id']")
	ip=$(json "d['instances'][$i]['private_ip']")
	imds=$(json "d['instances'][$i]['imds_endpoint']")
	mkdir -p "$work/www$i"
	echo "served by $id ($ip)" >"$work/www$i/index.html"
	python3 -m http.server 8080 --bind "$ip" --directory "$work/www$i" >"$work/web$i.log" 2>&1 &
	web[$i]=$!
	pids+=($!)
	# Only the emulator's endpoints; credentials come from the instance's IMDS.
	env -i PATH="$PATH" HOME="$work" AWS_REGION=us-east-1 \
		AWS_ENDPOINT_URL_EC2="$ec2" AWS_EC2_METADATA_SERVICE_ENDPOINT="$imds" \
		AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
		"$work/eipd" run --group demo --health-check "http://$ip:8080/" \
		--listen "$ip:9380" --control "127.0.0.1:$((9391 + i))" >"$work/eipd$i.log" 2>&1 &
	pids+=($!)
	echo "instance $id on $ip: eipd pid $!"
done

client() {
	python3 - "$eip" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
try:
    s = socket.create_connection((host, int(port)), timeout=2)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    body = b""
    while chunk := s.recv(4096):
        body += chunk
    print("client of the EIP sees:", body.split(b"\r\n\r\n", 1)[-1].decode().strip() or "(nothing)")
except OSError as e:
    print("client of the EIP sees: no answer:", e)
PY
}
holder() {
	for i in 0 1 2; do
		if "$work/eipd" status --json --control "127.0.0.1:$((9391 + i))" 2>/dev/null | grep -q '"role":"holder"'; then
			echo "$i"
			return
		fi
	done
}
wait_holder() {
	for _ in $(seq 150); do
		h=$(holder)
		if [ -n "$h" ] && [ "$h" != "${1:-}" ]; then echo "$h"; return; fi
		sleep 0.2
	done
}
events() {
	python3 - "$ctl" <<'PY'
import json, sys, urllib.request
for e in json.load(urllib.request.urlopen(sys.argv[1] + "/events")):
    print(f"  {e['time'][11:23]}  {e['action']:<12} {e.get('from') or '-'} -> {e.get('to') or '-'}")
PY
}

say "waiting for the election"
h=$(wait_holder)
"$work/eipd" status --control "127.0.0.1:$((9391 + h))"
client

say "killing the holder's web server (instance $h): its health check falls, it hands off"
kill "${web[$h]}"
h2=$(wait_holder "$h")
sleep 1
"$work/eipd" status --control "127.0.0.1:$((9391 + h2))"
client

say "SIGTERM to the new holder's eipd (instance $h2): it hands off before it exits"
pkill -TERM -f -- "--control 127.0.0.1:$((9391 + h2))" || true
h3=$(wait_holder "$h2")
sleep 1
"$work/eipd" status --control "127.0.0.1:$((9391 + h3))"
client

say "association history recorded by the emulator"
events
echo
echo "logs were in $work (removed on exit)"
