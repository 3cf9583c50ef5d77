#!/usr/bin/env bash
# A live two-node harules cluster on one machine, in network namespaces.
#
#   sudo scripts/netns-demo.sh
#
# Builds harules, creates three namespaces (node1, node2, a client) on two
# bridges (lan 198.51.100.0/24, backnet 203.0.113.0/24), starts `harules run`
# on both nodes with examples/netns-demo/policy.star, then:
#   1. the client fetches http://198.51.100.100:8080/ (node1 answers),
#   2. `harules move web node2` (planned switchover),
#   3. kill -9 of node2's agent: the supervisor releases the VIP, node1 takes over,
#   4. node2's agent restarted: the operator's move is still in force, so web
#      returns to node2 by a planned handover,
#   5. both links of node2 cut (as if its cables were pulled): node1 takes over
#      after 3 x 100 ms without heartbeats on either path.
# Everything is removed at the end, also on Ctrl-C. Only TEST-NET addresses
# are used and nothing in the root namespace is touched.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "netns-demo: run as root (it creates network namespaces)"; exit 2; }
command -v python3 >/dev/null || { echo "netns-demo: needs python3 for the demo web service"; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/harules-demo.XXXXXX)
id=$RANDOM
br=hd-br-$id n1=hd-n1-$id n2=hd-n2-$id cl=hd-cl-$id
pids=()

cleanup() {
  set +e
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 1
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for ns in $n1 $n2 $cl $br; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

step() { printf '\n=== %s\n' "$*"; }

step "building harules"
(cd "$root" && go build -o "$work/harules" ./cmd/harules)
cp "$root/examples/netns-demo/policy.star" "$work/"
head -c 32 /dev/urandom | base64 > "$work/secret"; chmod 600 "$work/secret"
for n in node1 node2; do mkdir -p "$work/www-$n"; echo "hello from $n" > "$work/www-$n/index.html"; done

step "creating namespaces $n1 $n2 $cl"
for ns in $br $n1 $n2 $cl; do ip netns add "$ns"; done
ip -n $br link add lan type bridge; ip -n $br link add backnet type bridge
ip -n $br link set lan up; ip -n $br link set backnet up
i=1
for ns in $n1 $n2; do
  ip -n $br link add l$i type veth peer name eth0 netns $ns
  ip -n $br link set l$i master lan up
  ip -n $ns addr add 198.51.100.$i/24 dev eth0; ip -n $ns link set eth0 up; ip -n $ns link set lo up
  ip -n $br link add b$i type veth peer name eth1 netns $ns
  ip -n $br link set b$i master backnet up
  ip -n $ns addr add 203.0.113.$i/24 dev eth1; ip -n $ns link set eth1 up
  i=$((i+1))
done
ip -n $br link add lc type veth peer name eth0 netns $cl
ip -n $br link set lc master lan up
ip -n $cl addr add 198.51.100.50/24 dev eth0; ip -n $cl link set eth0 up

start_agent() { # node namespace
  HARULES_NODE=$1 HARULES_DEMO_DIR=$work ip netns exec "$2" "$work/harules" run --policy "$work/policy.star" \
    --node "$1" --state-dir "$work/state-$1" --control "$work/$1.sock" >>"$work/$1.log" 2>&1 &
  pids+=($!)
}
status() { "$work/harules" status --control "$work/$1.sock"; }
fetch() { ip netns exec $cl curl -s -m 1 http://198.51.100.100:8080/ || echo "(no answer)"; }
wait_for() { # node text
  for _ in $(seq 1 100); do fetch | grep -q "$1" && return 0; sleep 0.1; done
  echo "timed out waiting for $1"; return 1
}

step "starting harules run on node1 and node2"
start_agent node1 $n1; start_agent node2 $n2
wait_for node1
status node1
echo "client: $(fetch)"

step "planned switchover: harules move web node2"
"$work/harules" move web node2 --control "$work/node1.sock"
wait_for node2
echo "client: $(fetch)"

step "kill -9 of node2's agent (the supervisor releases the VIP at once)"
for p in $(pgrep -f "run --policy $work/policy.star --node node2"); do
  grep -qz HARULES_SUPERVISED "/proc/$p/environ" 2>/dev/null && kill -KILL "$p"
done
wait_for node1
echo "client: $(fetch)"
grep -h "released after agent death" "$work/node2.log" || true

step "restarting node2's agent: the operator's move (web -> node2) still holds, so web goes back"
start_agent node2 $n2
wait_for node2
echo "client: $(fetch)"

step "cutting both links of node2: node1 takes over"
ip -n $n2 link set eth1 down
ip -n $n2 link set eth0 down
wait_for node1
echo "client: $(fetch)"
sleep 0.5
status node1

step "timeline of node1 (from its log)"
grep -hE 'kind=(action|peer|path)' "$work/node1.log" | cut -c1-160 | tail -15
step "done; cleaning up"
