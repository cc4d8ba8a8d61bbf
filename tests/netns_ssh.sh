#!/bin/sh
# A stand-in for `ssh HOST COMMAND...` for tests/integration/test_multinode.py, installed there as `ssh` first on PATH.
#
# It is the only thing the multi-node test replaces. Everything ssh is used for here (ctc-tui check's
# `ssh -o BatchMode=yes HOST true`, mpirun starting its orted daemons, DeepSpeed's ssh check and pdsh
# starting deepspeed.launcher.launch on each node) goes through it. Like ssh, it runs COMMAND through a
# shell "on" HOST, in HOST's home directory, with a fresh login environment (nothing of the caller's
# environment gets through, so what ranks need must really be forwarded by the launcher: mpirun -x,
# .deepspeed_env). "On HOST" means: in HOST's network namespace (its own interfaces, addresses and
# /etc/netns/NS/hosts) and UTS namespace (its own host name).
#
# $CTC_TEST_NETNS_MAP names a file of lines "HOST NAMESPACE NODENAME".
set -eu

while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; break ;;
        -[BbcDEeFIiJLlmOopQRSWw]) shift 2 ;;   # an option and its value
        -*) shift ;;                            # a switch (-2 -a -x -T ...) or an option with its value attached
        *) break ;;
    esac
done
[ $# -ge 2 ] || { echo "netns_ssh: usage: ssh [options] HOST COMMAND..." >&2; exit 255; }
host=${1#*@}
shift
entry=$(awk -v h="$host" '$1 == h { print $2 " " $3; exit }' "${CTC_TEST_NETNS_MAP:?}")
[ -n "$entry" ] || { echo "ssh: Could not resolve hostname $host: Name or service not known" >&2; exit 255; }
ns=${entry% *}
node=${entry#* }
exec ip netns exec "$ns" unshare --uts /bin/sh -c '
    hostname "$1" && cd "$HOME" &&
    exec env -i HOME="$HOME" USER=root LOGNAME=root SHELL=/bin/sh \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -c "$2"' netns_ssh "$node" "$*"
