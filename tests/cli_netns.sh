#!/bin/sh
# Two hosts: two network namespaces joined by a veth pair, each with its
# own host name, one rank in each, Open MPI over TCP only (mpirun in the
# first starts the second's daemon through a launcher that enters the
# namespace).  Both stages give the bytes of one process, and so does
# block-wise transfer; SIGKILL of the rank on the second host ends the job
# with mpirun's message naming it, and --resume on the two hosts finishes
# with the same bytes.  Needs root (ip netns); skipped otherwise.
. "$(dirname "$0")/cli_common.sh"
. "$(dirname "$0")/cli_dist_common.sh"
[ "${LC_HAVE_MPI:-no}" = yes ] || { echo "SKIP: built without MPI"; exit 77; }
command -v ip >/dev/null 2>&1 && command -v unshare >/dev/null 2>&1 ||
    { echo "SKIP: no ip or unshare"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: network namespaces need root"; exit 77; }

# two namespaces of names and a subnet of this run's own
n=$(($$ % 250 + 1))
A="lct$$a"
B="lct$$b"
net="10.214.$n"
cleanup() {
    ip netns del "$A" 2>/dev/null
    ip netns del "$B" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
if ! { ip netns add "$A" && ip netns add "$B" &&
    ip link add "lv$$a" type veth peer name "lv$$b" &&
    ip link set "lv$$a" netns "$A" && ip link set "lv$$b" netns "$B" &&
    ip -n "$A" addr add "$net.1/24" dev "lv$$a" && ip -n "$B" addr add "$net.2/24" dev "lv$$b" &&
    ip -n "$A" link set "lv$$a" up && ip -n "$B" link set "lv$$b" up &&
    ip -n "$A" link set lo up && ip -n "$B" link set lo up; } 2>"$tmp/err"; then
    echo "SKIP: cannot make network namespaces here: $(cat "$tmp/err")"
    exit 77
fi
# mpirun's remote launcher: enter the host's namespace, with its host name
cat >"$tmp/launch" <<EOF
#!/bin/sh
host=\$1; shift
case \$host in
$net.1) ns=$A;;
$net.2) ns=$B;;
*) echo "no host \$host" >&2; exit 1;;
esac
exec ip netns exec \$ns unshare --uts sh -c "hostname host-\$ns; \$*"
EOF
chmod +x "$tmp/launch"
two_hosts() { # ARGS of lolcats-train; mpirun on the first host
    ip netns exec "$A" unshare --uts sh -c "hostname host-$A; exec mpirun -np 2 \
        -H $net.1:1,$net.2:1 --mca plm_rsh_agent $tmp/launch --mca btl tcp,self \
        --mca btl_tcp_if_include $net.0/24 --mca oob_tcp_if_include $net.0/24 \
        -x OMP_WAIT_POLICY -x OMP_NUM_THREADS=1 $train $*"
}

one_process
two_hosts $opts --out "$tmp/two" --metrics "$tmp/two.jsonl" --verbose 2>"$tmp/err" ||
    fail "two hosts: $(cat "$tmp/err")"
grep -q '2 ranks on 2 hosts' "$tmp/err" || fail "not 2 hosts: $(grep ranks "$tmp/err")"
same_outputs "$tmp/two" "two hosts over TCP"

# block-wise transfer, a block on each host
head -c 100000 "$text" >"$tmp/bw.txt"
bopts="--model $model --data $tmp/bw.txt --seq-len 128 --window 16 --grad-accum 2 --max-steps 4
--eval-every 2 --val-size 8 --no-summary --quiet --stage transfer --block-layers 3"
# shellcheck disable=SC2086
"$train" $bopts --out "$tmp/bw1" --threads 1 || fail "block-wise, one process, failed"
two_hosts $bopts --out "$tmp/bw2" || fail "block-wise on two hosts failed"
for f in $(cd "$tmp/bw1" && find . -type f | sort); do
    cmp -s "$tmp/bw1/$f" "$tmp/bw2/$f" || fail "block-wise on two hosts: $f differs"
done

# SIGKILL of the rank on the second host while it trains
d="$tmp/kill"
(two_hosts $opts --out "$d" --metrics "$d.jsonl" >/dev/null 2>"$tmp/kill.err") &
job=$!
wait_for_lines "$d.jsonl" 7
netb=$(ip netns exec "$B" readlink /proc/self/ns/net)
for p in $(pgrep -x lolcats-train); do
    [ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" = "$netb" ] && kill -KILL "$p"
done
wait "$job"
rc=$?
[ "$rc" != 0 ] || fail "the job went on without the killed rank"
grep -q "rank 1 with PID [0-9]* on node $net.2 exited on signal 9" "$tmp/kill.err" ||
    fail "SIGKILL on the second host: $(cat "$tmp/kill.err")"
two_hosts $opts --out "$d" --metrics "$d.jsonl" --resume || fail "resume on two hosts failed"
same_outputs "$d" "SIGKILL of the second host's rank, then --resume"
exit $status
