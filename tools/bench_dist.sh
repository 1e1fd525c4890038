#!/bin/sh
# Times `tapegrad train` on one process against `mpirun -np K ... --distributed`, on one
# machine, and prints the medians of RUNS runs (the runs of each setting interleave, so a
# neighbour's load hits all settings alike).
#
#   sh tools/bench_dist.sh path/to/tapegrad DATA.csv LABEL [RUNS=7] [mpirun options...]
#   python3 tools/gen_big_csv.py /tmp/big.csv      # 1M x 32, about 280 MB
#   sh tools/bench_dist.sh build/tools/cli/tapegrad /tmp/big.csv label 7 --oversubscribe
#
# Settings: 1 process x 1 thread, 1 process x 2 threads, 2 ranks x 1 thread (--distributed).
# Columns: wall seconds of the whole command (mpirun start-up included), then the command's
# own seconds_load and seconds_train (rank 0's, from --json).
set -eu
BIN=$1
DATA=$2
LABEL=$3
RUNS=${4:-7}
shift 3
[ $# -gt 0 ] && shift
MPIFLAGS="-q $*"
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tapegrad-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

now() { date +%s.%N; }
field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1"; }

run() { # run NAME command...: appends "wall load train" to $TMP/NAME
    name=$1
    shift
    t0=$(now)
    "$@" >"$TMP/out"
    t1=$(now)
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') $(field "$TMP/out" seconds_load)" \
        "$(field "$TMP/out" seconds_train)" \
        >>"$TMP/$name"
}

ARGS="train $DATA --label $LABEL --json --quiet"
for i in $(seq "$RUNS"); do
    # shellcheck disable=SC2086
    run p1t1 "$BIN" $ARGS --threads 1
    # shellcheck disable=SC2086
    run p1t2 "$BIN" $ARGS --threads 2
    # shellcheck disable=SC2086
    run r2t1 mpirun $MPIFLAGS -np 2 "$BIN" $ARGS --threads 1 --distributed
done

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
printf '%-28s %8s %8s %8s\n' setting wall load train
for s in "p1t1:1 process, 1 thread" "p1t2:1 process, 2 threads" "r2t1:2 ranks x 1 thread"; do
    k=${s%%:*}
    printf '%-28s %8.3f %8.3f %8.3f\n' "${s#*:}" "$(cut -d' ' -f1 "$TMP/$k" | median)" \
        "$(cut -d' ' -f2 "$TMP/$k" | median)" "$(cut -d' ' -f3 "$TMP/$k" | median)"
done
