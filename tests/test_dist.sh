#!/bin/sh
# `tapegrad train --distributed` under mpirun against single-process training:
#  - data/placement.csv and a generated file whose quoted fields hold line breaks, commas and
#    doubled quotes, with one huge quoted field across the byte offsets where 2 and 3 ranks cut
#    the file (so ranks start inside quotes, and with 3 ranks one range holds no row start);
#  - the same iterations, log loss within 1e-6, weights and bias within 1e-5 (they are in fact
#    identical, and so are the model files), and only rank 0 writes the model, history and JSON;
#  - the same with rows dropped for missing values (--missing drop), and with labels given as
#    words (--positive yes);
#  - a bad row in rank 1's part: every rank exits non-zero, one line of error (the same line
#    single-process training prints, global line number included), no model file;
#  - a missing file: the same, printed once;
#  - a third label word that no one rank's part holds with the other two: the same error as
#    the single process's, from the rank whose part holds it.
#
#   sh tests/test_dist.sh path/to/tapegrad path/to/data mpirun [mpirun options...]
#
# mpirun options for a container as root: --oversubscribe --allow-run-as-root. Open MPI's
# shared-memory transport is told not to use cross-memory attach (often forbidden in
# containers): OMPI_MCA_btl_vader_single_copy_mechanism=none.
set -u

BIN=$1
DATA=$2/placement.csv
MPIRUN=$3
shift 3
MPIFLAGS="-q $*"
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tapegrad-dist.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
failures=0
checks=0

fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# mpi NP OUTDIR args...: runs `tapegrad ARGS` on NP ranks; every rank's exit status goes to
# OUTDIR/rc.PID (the wrapper itself exits 0, so mpirun never cuts a rank short), stdout and
# stderr to OUTDIR/out and OUTDIR/err.
mpi() {
    np=$1
    dir=$2
    shift 2
    mkdir -p "$dir"
    # shellcheck disable=SC2086 # MPIFLAGS is a list of options
    timeout 120 "$MPIRUN" $MPIFLAGS -np "$np" sh -c '"$@"; echo $? >"'"$dir"'/rc.$$"' sh \
        "$BIN" "$@" >"$dir/out" 2>"$dir/err"
    [ $? -eq 124 ] && fail "mpirun -np $np timed out (a hang): $*"
}

# Every rank's exit status: "allN" when every rank exited with N.
rank_status() {
    n=$(ls "$1"/rc.* 2>/dev/null | wc -l)
    [ "$n" -eq "$2" ] || { echo "only $n of $2 ranks finished"; return; }
    codes=$(cat "$1"/rc.* | sort -u)
    if [ "$(echo "$codes" | wc -l)" -eq 1 ]; then echo "all$codes"; else echo "mixed:" $codes; fi
}

field() { # field FILE KEY: a number from the one-line --json output
    sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1"
}

model_numbers() { # the weights, then the bias, one per line
    sed -n 's/.*"weights":[[:space:]]*\[\(.*\)\].*/\1/p; s/.*"bias":[[:space:]]*\([^,]*\),.*/\1/p' "$1" |
        tr ',' '\n' | tr -d ' \t'
}

# same_model WHAT single-dir dist-dir: the distributed result equals the single-process one.
same_model() {
    checks=$((checks + 1))
    a=$2
    b=$3
    [ "$(field "$a/out" iterations)" = "$(field "$b/out" iterations)" ] ||
        fail "$1: iterations $(field "$a/out" iterations) vs $(field "$b/out" iterations)"
    [ "$(field "$b/out" rows)" = "$(field "$a/out" rows)" ] || fail "$1: row counts differ"
    awk -v x="$(field "$a/out" train_log_loss)" -v y="$(field "$b/out" train_log_loss)" \
        'BEGIN { d = x - y; exit !(x != "" && (d < 0 ? -d : d) <= 1e-6) }' ||
        fail "$1: log loss $(field "$a/out" train_log_loss) vs $(field "$b/out" train_log_loss)"
    model_numbers "$a/model.json" >"$TMP/wa"
    model_numbers "$b/model.json" >"$TMP/wb"
    [ -s "$TMP/wa" ] || fail "$1: no weights in the single-process model"
    paste "$TMP/wa" "$TMP/wb" | awk '{ d = $1 - $2; if ((d < 0 ? -d : d) > 1e-5 || $2 == "") bad = 1 }
        END { exit bad }' || fail "$1: weights differ: $(paste "$TMP/wa" "$TMP/wb" | head -3)"
    [ "$(wc -l <"$b/out")" -eq 1 ] || fail "$1: --json printed $(wc -l <"$b/out") lines (not rank 0 alone)"
    cmp -s "$a/model.json" "$b/model.json" || fail "$1: the model files are not identical"
}

# train_both NAME NP args...: single-process and distributed training with the same arguments.
train_both() {
    name=$1
    np=$2
    shift 2
    mkdir -p "$TMP/$name.1"
    "$BIN" train "$@" --json --quiet --model "$TMP/$name.1/model.json" >"$TMP/$name.1/out" \
        2>"$TMP/$name.1/err" || fail "$name: single-process training failed: $(cat "$TMP/$name.1/err")"
    d=$TMP/$name.$np
    mpi "$np" "$d" train "$@" --distributed --json --quiet --model "$d/model.json" \
        --history "$d/history.csv"
    checks=$((checks + 1))
    st=$(rank_status "$d" "$np")
    [ "$st" = all0 ] || fail "$name -np $np: $st; stderr: $(head -3 "$d/err")"
    same_model "$name -np $np" "$TMP/$name.1" "$d"
    grep -q "\"ranks\":$np" "$d/out" || fail "$name -np $np: --json lacks ranks $np"
    [ "$(wc -l <"$d/history.csv")" -ge 3 ] || fail "$name -np $np: history too short"
}

# ---- a generated file with quoted line breaks ---------------------------------------------------
# 4000 rows of 40 features, a quoted note with a line break and a comma on every row, and in
# the middle one note of line after line that spans from about 30% to 70% of the file's bytes.
# Arguments: bad_row (a bad number in that row), gaps (NA in a third of the first 2500 rows),
# bad_label (label 2 in that row), words (labels yes/no; 2: "no" only in the first quarter of
# the rows, "yes" from there on but for one "nah" in the last row, so that the first rank's part
# and the last rank's each hold two values and only together three: the ranks read whole units
# of rows, the first one from row 1 to past the big field, and the last one the rows after).
gen_quoted() {
    awk -v rows=4000 -v d=40 -v bad_row="${1:-0}" -v gaps="${2:-0}" -v bad_label="${3:-0}" \
        -v words="${4:-0}" 'BEGIN {
        srand(7)
        printf "id,note"
        for (j = 0; j < d; j++) printf ",f%d", j
        print ",label"
        for (i = 1; i <= rows; i++) {
            printf "%d,\"row %d, first line\nsecond \"\"line\"\"", i, i
            if (i == rows / 2)
                for (k = 0; k < 20000; k++)
                    printf "\nfiller %d, with a comma, and \"\"quotes\"\", to be skipped %d", k, k
            printf "\""
            z = 0
            for (j = 0; j < d; j++) {
                u = rand() - 0.5
                z += u * ((j % 3) - 1) * 3
                v = u * (j + 1) + j
                if (i == bad_row && j == 7)
                    printf ",x%.4f", v
                else if (gaps && i < 2500 && i % 3 == 0 && j == 5)
                    printf ",NA"
                else
                    printf ",%.5g", v
            }
            lab = i == bad_label ? 2 : rand() < 1 / (1 + exp(-z)) ? 1 : 0
            if (words == 1 && lab != 2)
                lab = lab ? "yes" : "no"
            if (words == 2)
                lab = i == rows ? "nah" : !lab && i <= rows / 4 ? "no" : "yes"
            print "," lab
        }
    }'
}

FEATS=$(awk 'BEGIN { for (j = 0; j < 40; j++) printf "%sf%d", j ? "," : "", j }')
gen_quoted >"$TMP/quoted.csv"
size=$(wc -c <"$TMP/quoted.csv")

# The cut points of 2 and 3 ranks (size * r / k) must lie inside the big quoted field.
checks=$((checks + 1))
awk -v size="$size" 'BEGIN { RS = "\n"; inq = 0 } {
    line = $0 "\n"
    for (i = 1; i <= length(line); i++) {
        pos++
        c = substr(line, i, 1)
        if (c == "\"") inq = !inq
        if (pos == int(size / 2) || pos == int(size / 3) || pos == int(2 * size / 3)) {
            if (!inq) { print "cut at " pos " is outside quotes"; bad = 1 }
        }
    }
} END { exit bad }' "$TMP/quoted.csv" || fail "the generated file does not put the cuts inside quotes"

for np in 2 3; do
    train_both quoted "$np" "$TMP/quoted.csv" --label label --features "$FEATS"
done
train_both quoted_gd 2 "$TMP/quoted.csv" --label label --features "$FEATS" --solver gd --epochs 40

# Missing values in a third of the first 2500 rows: the rows left after --missing drop must
# still be summed in the same blocks as one process's.
gen_quoted 0 1 >"$TMP/gaps.csv"
for np in 2 3; do
    train_both gaps "$np" "$TMP/gaps.csv" --label label --features "$FEATS" --missing drop
    train_both gaps_mean "$np" "$TMP/gaps.csv" --label label --features "$FEATS" --missing mean
done

# Labels as words (--positive yes): the ranks must agree on the one other value.
gen_quoted 0 0 0 1 >"$TMP/words.csv"
for np in 2 3; do
    train_both words "$np" "$TMP/words.csv" --label label --features "$FEATS" --positive yes
done

# ---- the bundled data ----------------------------------------------------------------------
for np in 2 3; do
    train_both placement "$np" "$DATA" --label placement
done

# ---- failures -------------------------------------------------------------------------------
# expect_failure NAME NP args...: every rank exits 1, one line of error equal to the single
# process's, no model written.
expect_failure() {
    name=$1
    np=$2
    shift 2
    checks=$((checks + 1))
    "$BIN" train "$@" --quiet --model "$TMP/$name.single.json" >/dev/null 2>"$TMP/$name.want" &&
        fail "$name: single-process training did not fail"
    d=$TMP/$name.$np
    mpi "$np" "$d" train "$@" --distributed --quiet --model "$d/model.json"
    st=$(rank_status "$d" "$np")
    [ "$st" = all1 ] || fail "$name -np $np: $st (every rank must exit 1)"
    grep '^tapegrad' "$d/err" >"$d/ours"
    [ "$(wc -l <"$d/ours")" -eq 1 ] || fail "$name -np $np: $(wc -l <"$d/ours") error lines: $(cat "$d/ours")"
    cmp -s "$d/ours" "$TMP/$name.want" ||
        fail "$name -np $np: error '$(cat "$d/ours")', single process: '$(cat "$TMP/$name.want")'"
    [ ! -e "$d/model.json" ] || fail "$name -np $np: a model was written"
    ls -a "$d" | grep -q '\.tmp$' && fail "$name -np $np: a temporary file was left behind"
}

# Row 3400 of 4000: far into the last rank's part for 2 and 3 ranks.
gen_quoted 3400 >"$TMP/bad.csv"
for np in 2 3; do
    expect_failure bad_row "$np" "$TMP/bad.csv" --label label --features "$FEATS"
done
grep -q "bad number 'x" "$TMP/bad_row.want" || fail "bad row: unexpected message $(cat "$TMP/bad_row.want")"
# A bad label with the label column left to its default: the hint that goes with it, too.
gen_quoted 0 0 3400 >"$TMP/bad_label.csv"
expect_failure bad_label 2 "$TMP/bad_label.csv" --features "$FEATS"
# "no" early, "nah" in the last row: each rank's part holds yes and one other word, and only
# together are there three; the error names the row single-process reading does.
gen_quoted 0 0 0 2 >"$TMP/words3.csv"
for np in 2 3; do
    expect_failure third_word "$np" "$TMP/words3.csv" --label label --features "$FEATS" \
        --positive yes
done
grep -q "nah" "$TMP/third_word.want" || fail "third word: unexpected message $(cat "$TMP/third_word.want")"
expect_failure missing 2 "$TMP/does-not-exist.csv" --label label
expect_failure no_label 3 "$DATA" --label nope
printf 'a,b,label\n1,,0\n3,NA,1\n,2,0\n' >"$TMP/all_missing.csv"
expect_failure all_missing 2 "$TMP/all_missing.csv" --missing drop
printf 'a,b,label\n1,,0\n3,NA,1\n,,0\n5,,1\n' >"$TMP/empty_column.csv"
expect_failure empty_column 2 "$TMP/empty_column.csv" --missing mean

# mpirun itself reports the failure too (no wrapper).
checks=$((checks + 1))
# shellcheck disable=SC2086
timeout 120 "$MPIRUN" $MPIFLAGS -np 2 "$BIN" train "$TMP/bad.csv" --label label \
    --features "$FEATS" --distributed --quiet >/dev/null 2>&1
[ $? -ne 0 ] || fail "mpirun exited 0 on a bad row"

# Options the distributed trainer refuses, said once.
mpi 2 "$TMP/sgd" train "$DATA" --label placement --solver sgd --distributed
checks=$((checks + 1))
[ "$(rank_status "$TMP/sgd" 2)" = all2 ] || fail "--solver sgd --distributed: $(rank_status "$TMP/sgd" 2)"
[ "$(grep -c '^tapegrad' "$TMP/sgd/err")" -eq 1 ] || fail "--solver sgd: not one error line"

echo "$checks checks, $failures failures"
[ "$failures" -eq 0 ]
