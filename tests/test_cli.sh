#!/bin/sh
# End-to-end tests of the `tapegrad` command: train -> model file -> predict / eval, the
# training curves, and every bad-input path (exit code, one-line message, no model written).
#
#   sh tests/test_cli.sh path/to/tapegrad path/to/data
set -u

BIN=$1
DATA=$2/placement.csv
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tapegrad-cli.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
failures=0
checks=0

fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# expect CODE DESCRIPTION -- command...: runs it, checks the exit code, keeps stdout/stderr.
expect() {
    code=$1
    what=$2
    shift 3
    checks=$((checks + 1))
    # TG_EMULATOR (e.g. qemu-aarch64) runs a cross-built binary; empty on the host.
    ${TG_EMULATOR:-} "$@" >"$TMP/out" 2>"$TMP/err"
    got=$?
    if [ "$got" -ne "$code" ]; then
        fail "$what: exit $got, expected $code"
        sed 's/^/    stderr: /' "$TMP/err" | head -5
    fi
}

# The error message: exactly one line on stderr, containing the given text.
one_line_error() {
    checks=$((checks + 1))
    lines=$(wc -l <"$TMP/err")
    [ "$lines" -eq 1 ] || fail "$1: $lines lines on stderr"
    grep -q -- "$2" "$TMP/err" || fail "$1: stderr lacks '$2': $(cat "$TMP/err")"
}

no_file() {
    checks=$((checks + 1))
    [ ! -e "$2" ] || fail "$1: $2 was written"
    ls -a "$TMP" | grep -q '\.tmp$' && fail "$1: a temporary file was left behind"
}

# ---- the happy path ---------------------------------------------------------------------------
M=$TMP/model.json
expect 0 "train on the bundled data" -- "$BIN" train --model "$M" --history "$TMP/h.csv" \
    --plot "$TMP/p.svg" --json --quiet
for key in rows features iterations train_log_loss train_accuracy val_log_loss val_accuracy \
    auc seconds_load seconds_train; do
    grep -q "\"$key\":" "$TMP/out" || fail "--json lacks $key"
done
grep -q '"rows":1000' "$TMP/out" || fail "--json rows: $(cat "$TMP/out")"
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "--json printed more than one line"
grep -q '"format":[[:space:]]*"tapegrad-logreg"' "$M" || fail "model file: no format name"
grep -q '"features":[[:space:]]*\["cgpa"' "$M" || fail "model file: no feature names"
head -1 "$TMP/h.csv" | grep -q '^iteration,train_loss,objective,val_loss,grad_max,seconds$' ||
    fail "history header"
[ "$(wc -l <"$TMP/h.csv")" -ge 3 ] || fail "history too short"
grep -q '<svg' "$TMP/p.svg" && grep -q '<polyline' "$TMP/p.svg" || fail "plot is not an SVG chart"
# the chart's title names the data file, escaped for XML
cp "$DATA" "$TMP/a&b<c>\"d.csv"
expect 0 "plot of a file named with markup" -- "$BIN" train "$TMP/a&b<c>\"d.csv" --quiet \
    --plot "$TMP/esc.svg"
grep -q 'a&amp;b&lt;c&gt;&quot;d\.csv' "$TMP/esc.svg" || fail "plot title not escaped"
grep -q '<c>' "$TMP/esc.svg" && fail "plot title: raw markup in the SVG"

expect 0 "train with a validation split" -- "$BIN" train "$DATA" --label placement \
    --val-split 0.25 --seed 3 --solver gd --json --plot "$TMP/pv.svg"
grep -q '"val_log_loss":0\.' "$TMP/out" || fail "val_log_loss missing: $(cat "$TMP/out")"
[ "$(grep -c '<polyline' "$TMP/pv.svg")" -eq 2 ] || fail "plot lacks the validation curve"

expect 0 "human summary" -- "$BIN" train
grep -q 'log loss' "$TMP/out" && grep -q 'cgpa' "$TMP/out" || fail "summary: $(cat "$TMP/out")"
[ ! -s "$TMP/err" ] || fail "progress output on a non-terminal stderr"
# On a terminal (a pseudo-terminal from script(1), where util-linux has it; not under an
# emulator) the progress shows: the rows read, then an iteration bar redrawn in place, each
# line cleared before it is drawn; --quiet shows none of it. 10000 one-row epochs of sgd take long
# enough (about 1 s on the development VM) for the bar, drawn at most every 50 ms, to show even
# on a machine several times faster.
if [ -z "${TG_EMULATOR:-}" ] && command -v script >/dev/null 2>&1; then
    checks=$((checks + 1))
    script -qec "'$BIN' train '$DATA' --solver sgd --epochs 10000 --batch-size 1 --model '$TMP/pty.json'" \
        /dev/null >"$TMP/pty" 2>&1 || fail "train on a terminal: exit status not 0"
    grep -aq "reading $DATA (0.0 MB): 1000 / 1000 rows" "$TMP/pty" ||
        fail "terminal: no reading progress: $(head -c 300 "$TMP/pty")"
    grep -aq "$(printf '\r\033')\[K\[[#.]*\] iter [0-9]*/10000  loss 0\.[0-9]*" "$TMP/pty" ||
        fail "terminal: no iteration bar: $(head -c 300 "$TMP/pty")"
    grep -aq "log loss" "$TMP/pty" || fail "terminal: no summary"
    checks=$((checks + 1))
    script -qec "'$BIN' train '$DATA' --quiet --solver sgd --epochs 3000 --batch-size 1 --model '$TMP/pty.json'" \
        /dev/null >"$TMP/pty" 2>&1 || fail "train --quiet on a terminal: exit status not 0"
    [ ! -s "$TMP/pty" ] || fail "train --quiet on a terminal printed: $(head -c 300 "$TMP/pty")"
fi

# ---- predict / eval round trip -----------------------------------------------------------------
expect 0 "predict" -- "$BIN" predict --model "$M" "$DATA"
[ "$(wc -l <"$TMP/out")" -eq 1000 ] || fail "predict: not one line per row"
grep -qv '^[01]$' "$TMP/out" && fail "predict: a line that is not 0 or 1"
cp "$TMP/out" "$TMP/pred"

expect 0 "predict --proba" -- "$BIN" predict --model "$M" "$DATA" --proba
[ "$(wc -l <"$TMP/out")" -eq 1000 ] || fail "predict --proba: not one line per row"
awk '$1 < 0 || $1 > 1 { bad = 1 } END { exit bad }' "$TMP/out" || fail "probability out of [0, 1]"
# classes and probabilities agree (class 1 when p > 0.5)
paste -d' ' "$TMP/pred" "$TMP/out" | awk '($2 > 0.5) != $1 { bad = 1 } END { exit bad }' ||
    fail "predict and predict --proba disagree"

expect 0 "eval" -- "$BIN" eval --model "$M" "$DATA"
for word in 'log loss' accuracy precision recall F1 'ROC AUC' 'actual 0' 'actual 1'; do
    grep -q "$word" "$TMP/out" || fail "eval lacks '$word'"
done
expect 0 "eval --json" -- "$BIN" eval --model "$M" "$DATA" --label placement --json
# accuracy from predict's lines equals eval's
acc=$(tail -n +2 "$DATA" | cut -d, -f6 | paste -d' ' - "$TMP/pred" |
    awk '{ ok += ($1 == $2) } END { printf "%.6f", ok / NR }')
got=$(sed 's/.*"accuracy":\([0-9.e+-]*\).*/\1/' "$TMP/out")
awk -v a="$acc" -v b="$got" 'BEGIN { d = a - b; exit !(d < 1e-9 && d > -1e-9) }' ||
    fail "eval accuracy $got, predict says $acc"

# a file without the label column (predict ignores it; eval needs it)
cut -d, -f1-5 "$DATA" >"$TMP/nolabel.csv"
expect 0 "predict without the label column" -- "$BIN" predict --model "$M" "$TMP/nolabel.csv"
cmp -s "$TMP/out" "$TMP/pred" || fail "predictions changed without the label column"

# ---- bad input: exit 1, one line naming file:line:column, no model -----------------------------
printf 'a,b,y\n1,2,0\n3,4,2\n' >"$TMP/nonbinary.csv"
printf 'a,b,y\n1,2,0\n3,x,1\n' >"$TMP/badnum.csv"
printf 'a,b,y\n1,2,0\n3,4,0\n' >"$TMP/oneclass.csv"
: >"$TMP/empty.csv"
printf 'a,b,y\n' >"$TMP/header.csv"
OUT=$TMP/never.json

expect 1 "missing file" -- "$BIN" train "$TMP/missing.csv" --label y --model "$OUT"
one_line_error "missing file" "missing.csv"
no_file "missing file" "$OUT"
# a line break in a name would split the one error line: it is shown as a space
expect 1 "missing file, a line break in its name" -- "$BIN" train "$TMP/no
such.csv" --model "$OUT"
one_line_error "missing file, a line break in its name" "no such.csv: cannot open"
expect 1 "unknown label column" -- "$BIN" train "$DATA" --label nope --model "$OUT"
one_line_error "unknown label column" "nope"
no_file "unknown label column" "$OUT"
expect 1 "non-binary labels" -- "$BIN" train "$TMP/nonbinary.csv" --label y --model "$OUT"
one_line_error "non-binary labels" "nonbinary.csv:3:3:"
no_file "non-binary labels" "$OUT"
expect 1 "bad number" -- "$BIN" train "$TMP/badnum.csv" --label y --model "$OUT"
one_line_error "bad number" "badnum.csv:3:2:"
no_file "bad number" "$OUT"
expect 1 "empty file" -- "$BIN" train "$TMP/empty.csv" --label y --model "$OUT"
one_line_error "empty file" "empty.csv"
no_file "empty file" "$OUT"
expect 1 "header only" -- "$BIN" train "$TMP/header.csv" --label y --model "$OUT"
one_line_error "header only" "header.csv:1"
no_file "header only" "$OUT"
expect 1 "one class" -- "$BIN" train "$TMP/oneclass.csv" --label y --model "$OUT"
one_line_error "one class" "only one class (0) in 2 rows;"
no_file "one class" "$OUT"
printf 'a,b,y\n1,2,1\n' >"$TMP/onerow.csv"
expect 1 "one row" -- "$BIN" train "$TMP/onerow.csv" --label y --model "$OUT"
one_line_error "one row" "only one class (1) in 1 row;"
# a diverging step names the flag that sets it
expect 1 "gd diverging" -- "$BIN" train --solver gd --lr 1e6 --epochs 1000 --model "$OUT"
one_line_error "gd diverging" "placement.csv: gd diverged at iteration .* (loss nan); try a smaller --lr$"
no_file "gd diverging" "$OUT"
# counts of one are singular in the messages and the summary
printf 'a,y\n1,1\n2,0\n' >"$TMP/tworows.csv"
expect 1 "a split leaving one row" -- "$BIN" train "$TMP/tworows.csv" --val-split 0.5 --model "$OUT"
one_line_error "a split leaving one row" "tworows.csv: the validation split"
one_line_error "a split leaving one row" \
    "leaves 1 training row with only class 1; use a smaller --val-split or another --seed"
expect 0 "one iteration" -- "$BIN" train "$TMP/tworows.csv" --epochs 1 --model "$TMP/one.json"
grep -q "^data .*: 2 rows x 1 feature -> 'y'" "$TMP/out" || fail "one feature: $(cat "$TMP/out")"
grep -q " after 1 iteration " "$TMP/out" || fail "one iteration: $(cat "$TMP/out")"
no_file "one row" "$OUT"
expect 1 "unknown feature" -- "$BIN" train "$DATA" --label placement --features cgpa,nope \
    --model "$OUT"
one_line_error "unknown feature" "nope"
no_file "unknown feature" "$OUT"

printf 'a,b,y\n1,2,0\n2,1e39,1\n3,1,0\n' >"$TMP/huge.csv"
expect 1 "a number beyond float32" -- "$BIN" train "$TMP/huge.csv" --label y --model "$OUT"
one_line_error "a number beyond float32" "huge.csv:3:2: number '1e39'"
no_file "a number beyond float32" "$OUT"
# a failed --history leaves no model behind
expect 1 "history in a missing directory" -- "$BIN" train --model "$OUT" --quiet \
    --history "$TMP/no/such/dir/h.csv"
one_line_error "history in a missing directory" "no/such/dir/h.csv"
no_file "history in a missing directory" "$OUT"
# a run writes all its files or none: a failed --plot leaves no --history either
expect 1 "plot in a missing directory" -- "$BIN" train --model "$OUT" --quiet \
    --history "$TMP/h-plotfail.csv" --plot "$TMP/no/such/dir/p.svg"
one_line_error "plot in a missing directory" "no/such/dir/p.svg"
no_file "plot in a missing directory" "$TMP/h-plotfail.csv"
no_file "plot in a missing directory" "$OUT"
# an existing history is left as it was
echo old >"$TMP/h-old.csv"
expect 1 "plot in a missing directory, old history" -- "$BIN" train --quiet \
    --history "$TMP/h-old.csv" --plot "$TMP/no/such/dir/p.svg"
checks=$((checks + 1))
[ "$(cat "$TMP/h-old.csv")" = old ] || fail "a failed --plot replaced an existing --history"
# output lost on stdout (a full disk) is a failure, not a success
if [ -w /dev/full ]; then
    checks=$((checks + 1))
    ${TG_EMULATOR:-} "$BIN" train --json --quiet >/dev/full 2>"$TMP/err"
    [ $? -eq 1 ] || fail "--json to a full disk: exit status not 1"
    one_line_error "--json to a full disk" "standard output"
    # the same with a model: exit 1 means no model file, so the model is written after stdout
    checks=$((checks + 1))
    ${TG_EMULATOR:-} "$BIN" train --model "$TMP/full.json" >/dev/full 2>"$TMP/err"
    [ $? -eq 1 ] || fail "summary to a full disk: exit status not 1"
    one_line_error "summary to a full disk" "standard output"
    no_file "summary to a full disk" "$TMP/full.json"
    # nor curves: the run's files are all written or none
    checks=$((checks + 1))
    ${TG_EMULATOR:-} "$BIN" train --history "$TMP/full.csv" --plot "$TMP/full.svg" \
        >/dev/full 2>"$TMP/err"
    [ $? -eq 1 ] || fail "summary and curves to a full disk: exit status not 1"
    no_file "summary and curves to a full disk" "$TMP/full.csv"
    no_file "summary and curves to a full disk" "$TMP/full.svg"
    for what in version --help "train --help"; do
        checks=$((checks + 1))
        ${TG_EMULATOR:-} "$BIN" $what >/dev/full 2>"$TMP/err"
        [ $? -eq 1 ] || fail "$what to a full disk: exit status not 1"
    done
    # predictions larger than the output buffer fail in fwrite, before the final flush
    head -1 "$DATA" >"$TMP/many.csv"
    for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40; do
        tail -n +2 "$DATA"
    done >>"$TMP/many.csv"
    checks=$((checks + 1))
    ${TG_EMULATOR:-} "$BIN" predict --model "$M" "$TMP/many.csv" >/dev/full 2>"$TMP/err"
    [ $? -eq 1 ] || fail "predict to a full disk: exit status not 1"
    one_line_error "predict to a full disk" "standard output: No space left"
    # a device among the outputs is written before any file is renamed into place
    expect 1 "model to a full disk, with curves" -- "$BIN" train --quiet --model /dev/full \
        --history "$TMP/dev-h.csv" --plot "$TMP/dev-p.svg"
    one_line_error "model to a full disk, with curves" "/dev/full"
    no_file "model to a full disk, with curves" "$TMP/dev-h.csv"
    no_file "model to a full disk, with curves" "$TMP/dev-p.svg"
fi
# a model read from a pipe (a named one here; a shell's <(...) is the same): eval, which looks
# up the model's label first, must not read it twice
mkfifo "$TMP/model.fifo"
for cmd in predict eval; do
    checks=$((checks + 1))
    # bounded: a second read of the pipe would wait for a writer forever
    timeout 60 sh -c 'cat "$1" >"$2"' sh "$M" "$TMP/model.fifo" &
    timeout 60 ${TG_EMULATOR:-} "$BIN" "$cmd" --model "$TMP/model.fifo" "$DATA" >"$TMP/out" \
        2>"$TMP/err" || fail "$cmd --model from a pipe: $(cat "$TMP/err")"
    wait
done
grep -q "^log loss   0\.4477" "$TMP/out" || fail "eval --model from a pipe: $(head -3 "$TMP/out")"
# an output named by a descriptor's link into a pipe (/dev/fd/N, /proc/self/fd/N: what a shell's
# >(...) hands over) is written through the link, as /dev/stdout is
for link in /dev/fd/1 /proc/self/fd/1 /dev/stdout; do
    [ -e "$link" ] || continue
    checks=$((checks + 1))
    { ${TG_EMULATOR:-} "$BIN" train --quiet --model "$link" 2>"$TMP/err"; echo $? >"$TMP/rc"; } |
        cat >"$TMP/piped.json"
    [ "$(cat "$TMP/rc")" = 0 ] || fail "--model $link into a pipe: exit $(cat "$TMP/rc"): $(cat "$TMP/err")"
    grep -q '"format":[[:space:]]*"tapegrad-logreg"' "$TMP/piped.json" ||
        fail "--model $link into a pipe: no model came through"
done
# a closed stdout: the summary must not land in the model file (the lowest free descriptor);
# not under an emulator, whose own files would take that descriptor first
if [ -z "${TG_EMULATOR:-}" ]; then
    checks=$((checks + 1))
    "$BIN" train --model "$TMP/closed.json" >&- 2>"$TMP/err"
    [ $? -eq 1 ] || fail "train with stdout closed: exit status not 1"
    one_line_error "train with stdout closed" "standard output"
    no_file "train with stdout closed" "$TMP/closed.json"
    # nor may an output naming the closed descriptor vanish into what holds its place
    checks=$((checks + 1))
    "$BIN" train --quiet --model "$TMP/closed.json" --history /dev/stdout >&- 2>"$TMP/err"
    [ $? -eq 1 ] || fail "--history /dev/stdout with stdout closed: exit status not 1"
    one_line_error "--history /dev/stdout with stdout closed" "/dev/stdout: cannot write"
    no_file "--history /dev/stdout with stdout closed" "$TMP/closed.json"
    # '-' with stdin closed is said as such, not as an empty file
    checks=$((checks + 1))
    "$BIN" train - --model "$TMP/closed.json" <&- 2>"$TMP/err"
    [ $? -eq 1 ] || fail "train - with stdin closed: exit status not 1"
    one_line_error "train - with stdin closed" "standard input is closed"
    checks=$((checks + 1))
    "$BIN" predict --model "$M" - <&- >"$TMP/out" 2>"$TMP/err"
    [ $? -eq 1 ] || fail "predict - with stdin closed: exit status not 1"
    one_line_error "predict - with stdin closed" "standard input is closed"
fi
# a reader that has gone (the sleep lets it go first): EPIPE, exit 1, no file left behind
checks=$((checks + 1))
{
    sleep 1
    ${TG_EMULATOR:-} "$BIN" train --model "$TMP/pipe.json" --history "$TMP/pipe.csv" 2>"$TMP/err"
    echo $? >"$TMP/pipe.rc"
} | true
[ "$(cat "$TMP/pipe.rc")" = 1 ] || fail "train into a closed pipe: exit status $(cat "$TMP/pipe.rc")"
one_line_error "train into a closed pipe" "Broken pipe"
no_file "train into a closed pipe" "$TMP/pipe.json"
no_file "train into a closed pipe" "$TMP/pipe.csv"
# a name close to the file system's limit still gets a temporary file of its own
LONG=$TMP/$(printf '%0245d' 0).json
expect 0 "model with a 250-byte name" -- "$BIN" train --quiet --model "$LONG"
cmp -s "$LONG" "$M" || fail "model with a 250-byte name: not the model"
# JSON and SVG are UTF-8 even when a file name or a header is not
BADNAME=$TMP/$(printf 'bad\377name').csv
cp "$DATA" "$BADNAME"
expect 0 "data file name that is not UTF-8" -- "$BIN" train "$BADNAME" --json --quiet \
    --plot "$TMP/badname.svg"
grep -q "bad$(printf '\357\277\275')name" "$TMP/out" ||
    fail "a file name that is not UTF-8: not replaced by U+FFFD in --json"
grep -q "bad$(printf '\377')name" "$TMP/out" "$TMP/badname.svg" &&
    fail "a file name that is not UTF-8 went into --json or the SVG as it was"
NONCHAR=$TMP/$(printf 'non\357\277\277char').csv # U+FFFF: UTF-8, but not allowed in XML
cp "$DATA" "$NONCHAR"
expect 0 "data file name with U+FFFF" -- "$BIN" train "$NONCHAR" --quiet --plot "$TMP/nonchar.svg"
grep -q "non$(printf '\357\277\275')char" "$TMP/nonchar.svg" ||
    fail "U+FFFF in a file name: not replaced by U+FFFD in the SVG"
printf 'a,b,ok\n1,2,s\355\n2,1,no\n3,3,s\355\n1,1,no\n' >"$TMP/latin1-label.csv"
expect 1 "--positive that is not UTF-8" -- "$BIN" train "$TMP/latin1-label.csv" \
    --positive "$(printf 's\355')" --model "$OUT"
one_line_error "--positive that is not UTF-8" "not valid UTF-8"
no_file "--positive that is not UTF-8" "$OUT"
printf 'a,\377\376,y\n1,2,0\n2,3,1\n3,1,0\n' >"$TMP/latin1.csv"
expect 1 "header that is not UTF-8" -- "$BIN" train "$TMP/latin1.csv" --model "$OUT"
one_line_error "header that is not UTF-8" "not valid UTF-8"
no_file "header that is not UTF-8" "$OUT"
# a model trained without a header names its columns "0", "1", ...: on a file with a header
# those are not positions
tail -n +2 "$DATA" >"$TMP/nohead.csv"
expect 0 "train --no-header" -- "$BIN" train "$TMP/nohead.csv" --no-header --model "$TMP/nh.json" \
    --quiet
expect 1 "positional model on a file with a header" -- "$BIN" eval --model "$TMP/nh.json" "$DATA"
one_line_error "positional model on a file with a header" "no column named '0'"
expect 0 "positional model with --no-header" -- "$BIN" eval --model "$TMP/nh.json" \
    "$TMP/nohead.csv" --no-header
# a positional model whose features are not the file's columns in order (the label first, the
# features picked and reordered): eval on its own training file scores the training fit, and a
# file of just its features in its order (from a pipe too: read once) gives the same predictions
printf '0,1,50\n1,3,40\n0,5,30\n1,7,20\n0,2,60\n1,6,10\n0,4,45\n1,3,5\n' >"$TMP/nhpos.csv"
expect 0 "train --no-header, features 2,1" -- "$BIN" train "$TMP/nhpos.csv" --no-header --label 0 \
    --features 2,1 --model "$TMP/nhpos.json" --json
train_ll=$(sed 's/.*"train_log_loss":\([^,]*\).*/\1/' "$TMP/out")
expect 0 "eval a reordered positional model" -- "$BIN" eval --model "$TMP/nhpos.json" \
    "$TMP/nhpos.csv" --no-header --json
grep -q "\"log_loss\":$train_ll," "$TMP/out" ||
    fail "eval a reordered positional model: $(cat "$TMP/out"), trained to $train_ll"
expect 0 "predict by position" -- "$BIN" predict --model "$TMP/nhpos.json" "$TMP/nhpos.csv" \
    --no-header --proba
mv "$TMP/out" "$TMP/by_position"
awk -F, '{ print $3 "," $2 }' "$TMP/nhpos.csv" >"$TMP/nhfeat.csv"
expect 0 "predict on the features alone" -- "$BIN" predict --model "$TMP/nhpos.json" \
    "$TMP/nhfeat.csv" --no-header --proba
cmp -s "$TMP/out" "$TMP/by_position" || fail "predict on the features alone: other predictions"
checks=$((checks + 1))
cat "$TMP/nhfeat.csv" | ${TG_EMULATOR:-} "$BIN" predict --model "$TMP/nhpos.json" - --no-header \
    --proba >"$TMP/out" 2>"$TMP/err"
cmp -s "$TMP/out" "$TMP/by_position" ||
    fail "predict on the features from a pipe: $(cat "$TMP/err")"
expect 0 "train --no-header, one feature" -- "$BIN" train "$TMP/nhpos.csv" --no-header --label 0 \
    --features 2 --model "$TMP/nhone.json" --quiet
expect 0 "eval a one-feature positional model" -- "$BIN" eval --model "$TMP/nhone.json" \
    "$TMP/nhpos.csv" --no-header
awk -F, '{ print $2 }' "$TMP/nhpos.csv" >"$TMP/nhcol.csv"
expect 1 "a positional model on too few columns" -- "$BIN" predict --model "$TMP/nhpos.json" \
    "$TMP/nhcol.csv" --no-header
one_line_error "a positional model on too few columns" "1 feature column, but the model"
# names that are digits in a real header are names: no advice about --no-header
printf '1,0,y\n1,2,0\n2,3,1\n3,1,0\n0,0,1\n' >"$TMP/digits.csv"
expect 0 "train with digit column names" -- "$BIN" train "$TMP/digits.csv" --model "$TMP/dg.json" \
    --quiet
printf 'a,b,y\n1,2,0\n2,3,1\n' >"$TMP/letters.csv"
expect 1 "digit-named model on other columns" -- "$BIN" predict --model "$TMP/dg.json" \
    "$TMP/letters.csv"
one_line_error "digit-named model on other columns" "no column named '1'"
grep -q -- "--no-header" "$TMP/err" && fail "digit-named model: advises --no-header"
# unstandardized features near the float32 limit overflow the first gradient: an error, not a
# zero model written after "no progress"
printf 'a,b,y\n3e38,1,0\n3e38,2,1\n-3e38,3,0\n3e38,4,1\n3.4e38,5,1\n' >"$TMP/near_max.csv"
expect 1 "a gradient that overflows" -- "$BIN" train "$TMP/near_max.csv" --no-standardize \
    --model "$OUT"
one_line_error "a gradient that overflows" \
    "near_max.csv: the gradient at the starting point is not finite (inf): the features are too large for float32 sums; train without --no-standardize"
no_file "a gradient that overflows" "$OUT"
# finite but huge: no step lowers the float32 loss, so the weights stay 0; written, with a warning
printf 'a,b,y\n1e30,1e29,1\n-2e30,3e29,0\n5e29,-1e29,1\n-1e30,2e29,0\n3e30,1e29,0\n' >"$TMP/huge_raw.csv"
expect 0 "no progress from the start" -- "$BIN" train "$TMP/huge_raw.csv" --no-standardize \
    --model "$TMP/huge_raw.json"
one_line_error "no progress from the start" \
    "warning: lbfgs made no progress from its starting point (max gradient .*), so the weights are all 0; train without --no-standardize"
grep -q "stopped (no progress) after 0 iterations" "$TMP/out" ||
    fail "no progress from the start: $(cat "$TMP/out")"
expect 0 "progress on the same rows standardized" -- "$BIN" train "$TMP/huge_raw.csv" --quiet \
    --model "$TMP/huge_std.json"
checks=$((checks + 1))
[ ! -s "$TMP/err" ] || fail "standardized: a warning: $(cat "$TMP/err")"
# a logit beyond the float range: the log loss of a row that is right with certainty is 0
head -1 "$DATA" >"$TMP/huge.csv"
sed -n 2p "$DATA" | awk -F, 'BEGIN { OFS = "," } { $1 = "3e38"; $NF = "1"; print }' >>"$TMP/huge.csv"
expect 0 "eval with an overflowing logit" -- "$BIN" eval --model "$M" "$TMP/huge.csv" --json
grep -q '"log_loss":0[,}]' "$TMP/out" || fail "eval with an overflowing logit: $(cat "$TMP/out")"
# a model path that is a symlink: the file it names is replaced, the link stays
ln -s model-target.json "$TMP/link.json"
expect 0 "model through a symlink" -- "$BIN" train --model "$TMP/link.json" --quiet
checks=$((checks + 1))
[ -L "$TMP/link.json" ] && cmp -s "$TMP/model-target.json" "$M" ||
    fail "model through a symlink: the link was replaced or the model differs"

# a failed run leaves an existing model untouched
cp "$M" "$TMP/keep.json"
expect 1 "failed run over an existing model" -- "$BIN" train "$TMP/nonbinary.csv" --label y \
    --model "$TMP/keep.json"
cmp -s "$M" "$TMP/keep.json" || fail "a failed run changed an existing model"
expect 1 "model in a missing directory" -- "$BIN" train --model "$TMP/no/such/dir/m.json" --quiet
one_line_error "model in a missing directory" "no/such/dir/m.json"

# ---- usage errors: exit 2 ------------------------------------------------------------------------
expect 2 "predict --positive" -- "$BIN" predict --model "$M" "$DATA" --positive yes
one_line_error "predict --positive" "predict reads no labels"
# without --label the label is the last column, and a label error says so
printf 'a,b,y\n1,2,0\n3,1,1\n2,2,0\n4,0,1\n' >"$TMP/last.csv"
expect 0 "no --label: the last column" -- "$BIN" train "$TMP/last.csv" --model "$TMP/last.json" \
    --quiet
grep -q '"label":[[:space:]]*"y"' "$TMP/last.json" || fail "no --label: the model's label is not y"
printf 'y,a,b\n0,1,2\n1,3,1\n' >"$TMP/first.csv"
expect 1 "no --label, label first" -- "$BIN" train "$TMP/first.csv" --model "$OUT"
one_line_error "no --label, label first" "first.csv:2:3: .*unless --label names another"
no_file "no --label, label first" "$OUT"
# --features entries are trimmed like the header's names
expect 0 "--features with spaces" -- "$BIN" train "$TMP/last.csv" --features 'a, b' --json --quiet
grep -q '"features":2' "$TMP/out" || fail "--features with spaces: $(cat "$TMP/out")"
expect 2 "unknown option" -- "$BIN" train --frobnicate
one_line_error "unknown option" "frobnicate"
expect 2 "bad number option" -- "$BIN" train --epochs many
one_line_error "bad number option" "--epochs"
expect 2 "bad solver" -- "$BIN" train --solver newton
one_line_error "bad solver" "newton"
expect 2 "bad val split" -- "$BIN" train --val-split 2
expect 2 "a zero step size" -- "$BIN" train --lr 0
one_line_error "a zero step size" "--lr"
expect 2 "patience without a split" -- "$BIN" train --patience 3
expect 2 "unknown command" -- "$BIN" frobnicate
expect 2 "a second data file" -- "$BIN" train "$DATA" "$DATA"
one_line_error "a second data file" "unexpected argument '$DATA'"
expect 2 "a one-dash option" -- "$BIN" train -q
one_line_error "a one-dash option" "unknown option '-q' (options start with --)"
expect 2 "a value given to a flag" -- "$BIN" train --quiet=yes
one_line_error "a value given to a flag" "--quiet takes no value"
expect 2 "an option's value missing at the end" -- "$BIN" eval --model
one_line_error "an option's value missing at the end" "--model needs a value"
expect 2 "eval without the data file" -- "$BIN" eval --model "$M"
one_line_error "eval without the data file" "needs --model M.json and one DATA.csv"
for cmd in train predict eval; do
    expect 0 "$cmd --help" -- "$BIN" "$cmd" --help
    grep -q "^usage: tapegrad $cmd" "$TMP/out" || fail "$cmd --help: $(head -1 "$TMP/out")"
done
# after --, a data file whose name starts with a dash is a file, not an option
cp "$DATA" "$TMP/-dash.csv"
checks=$((checks + 1))
(cd "$TMP" && ${TG_EMULATOR:-} "$BIN" train --label placement --json --quiet -- -dash.csv) \
    >"$TMP/out" 2>"$TMP/err" || fail "-- then -dash.csv: $(cat "$TMP/err")"
grep -q '"rows":1000' "$TMP/out" || fail "-- then -dash.csv: $(cat "$TMP/out")"
expect 2 "predict without --model" -- "$BIN" predict "$DATA"
expect 2 "bad --missing value" -- "$BIN" train "$DATA" --label placement --missing sometimes \
    --model "$OUT"
one_line_error "bad --missing value" "sometimes"
no_file "bad --missing value" "$OUT"
expect 2 "bad --delimiter" -- "$BIN" eval --model "$M" "$DATA" --label placement --delimiter ab
one_line_error "bad --delimiter" "--delimiter"
expect 2 "an option where a value belongs" -- "$BIN" train --model --json
one_line_error "an option where a value belongs" "--model needs a value"
expect 2 "--lr with lbfgs" -- "$BIN" train --lr 0.5
one_line_error "--lr with lbfgs" "lbfgs"
expect 2 "--batch-size with gd" -- "$BIN" train --solver gd --batch-size 3
one_line_error "--batch-size with gd" "--batch-size"
for solver in sgd adam; do
    expect 2 "--tol with $solver" -- "$BIN" train --solver "$solver" --tol 1e-6
    one_line_error "--tol with $solver" "--tol applies to the lbfgs and gd solvers, not $solver"
done
expect 0 "--tol with gd" -- "$BIN" train --solver gd --tol 1e-3 --quiet
for solver in lbfgs gd; do
    expect 2 "--seed with $solver" -- "$BIN" train --solver "$solver" --seed 5
    one_line_error "--seed with $solver" "--seed has nothing to seed: $solver reads every row"
done
expect 0 "--seed with a split" -- "$BIN" train --seed 5 --val-split 0.2 --quiet
expect 0 "--seed with sgd" -- "$BIN" train --solver sgd --seed 5 --epochs 2 --quiet
expect 2 "number with a leading space" -- "$BIN" train --epochs ' 5'
expect 2 "two outputs in one file" -- "$BIN" train --model "$OUT" --history "$OUT"
one_line_error "two outputs in one file" "the same file"
no_file "two outputs in one file" "$OUT"
# the same file spelled two ways, not there yet: through ./, and through a dangling symlink
expect 2 "two outputs in one file, two spellings" -- "$BIN" train --model "$OUT" \
    --plot "$(dirname "$OUT")/./$(basename "$OUT")"
no_file "two outputs in one file, two spellings" "$OUT"
ln -s never-h.csv "$TMP/dangling.csv"
expect 2 "an output through a dangling symlink" -- "$BIN" train --model "$TMP/dangling.csv" \
    --history "$TMP/never-h.csv"
no_file "an output through a dangling symlink" "$TMP/never-h.csv"
cp "$DATA" "$TMP/data-copy.csv"
expect 2 "model over the data" -- "$BIN" train "$TMP/data-copy.csv" --model "$TMP/data-copy.csv"
cmp -s "$DATA" "$TMP/data-copy.csv" || fail "model over the data: the data was replaced"
expect 2 "unknown command, one line" -- "$BIN" TRAIN
one_line_error "unknown command, one line" "unknown command 'TRAIN'"
expect 2 "version with an argument" -- "$BIN" version extra
expect 0 "help train" -- "$BIN" help train
grep -q -- '--val-split' "$TMP/out" || fail "help train: not train's options"
expect 0 "help" -- "$BIN" train --help
grep -q -- '--val-split' "$TMP/out" || fail "train --help lacks the options"

# ---- bad model files ---------------------------------------------------------------------------
printf '{"format": "tapegrad-logreg", "version": 1,\n "weights": [1,\n' >"$TMP/broken.json"
expect 1 "truncated model" -- "$BIN" predict --model "$TMP/broken.json" "$DATA"
one_line_error "truncated model" "broken.json:"
printf '{"format": "tapegrad-logreg", "version": 1, "features": ["zz"], "weights": [1], "bias": 0, "solver": {"name": "lbfgs"}}' >"$TMP/other.json"
expect 1 "model features not in the file" -- "$BIN" predict --model "$TMP/other.json" "$DATA"
one_line_error "model features not in the file" "zz"
printf '{"format": "tapegrad-logreg", "version": 1, "features": ["cgpa", "cgpa"], "weights": [1, 2], "bias": 0, "solver": {"name": "lbfgs"}}' >"$TMP/twice.json"
expect 1 "model with a feature twice" -- "$BIN" predict --model "$TMP/twice.json" "$DATA"
one_line_error "model with a feature twice" "twice.json:1:57: field 'features': 'cgpa' is listed more"
# finite as a double, infinite as the float the kernels use
sed 's/"bias":[[:space:]]*[-0-9.e]*/"bias": 1e300/' "$M" >"$TMP/huge-bias.json"
grep -q '"bias": 1e300' "$TMP/huge-bias.json" || fail "huge-bias.json: no bias to replace"
expect 1 "model with a bias beyond float" -- "$BIN" predict --model "$TMP/huge-bias.json" "$DATA"
one_line_error "model with a bias beyond float" "float32 range"
expect 1 "eval with non-binary labels" -- "$BIN" eval --model "$M" "$TMP/nonbinary.csv" --label y
one_line_error "eval with non-binary labels" "nope\|cgpa\|nonbinary.csv"

# ---- string labels and missing values ----------------------------------------------------------
printf 'a,b,y\n1,2,yes\n3,,no\n5,6,yes\n7,8,no\n2,1,no\n' >"$TMP/strings.csv"
expect 1 "string labels without --positive" -- "$BIN" train "$TMP/strings.csv" --label y --model "$OUT"
one_line_error "string labels without --positive" "strings.csv:2:3:"
# library errors come out in the command's terms: the flag, not the C option
one_line_error "string labels name the --positive flag" "use --positive VALUE"
expect 1 "a missing value is an error by default" -- "$BIN" train "$TMP/strings.csv" --label y \
    --positive yes --model "$OUT"
one_line_error "a missing value is an error by default" "strings.csv:3:2:"
one_line_error "a missing value names the --missing flag" "use --missing drop .* --missing mean"
printf 'a,b\n1,2,0\n3,4,1\n' >"$TMP/short_header.csv"
expect 1 "rows longer than the header" -- "$BIN" train "$TMP/short_header.csv" --label b \
    --model "$OUT"
one_line_error "rows longer than the header" "short_header.csv:2:3: expected 2 fields, found 3"
no_file "rows longer than the header" "$OUT"
expect 0 "--missing drop" -- "$BIN" train "$TMP/strings.csv" --label y --positive yes \
    --missing drop --json --quiet
grep -q '"rows":4,"rows_dropped":1,' "$TMP/out" ||
    fail "--missing drop: expected 4 rows, 1 dropped: $(cat "$TMP/out")"
expect 0 "--missing drop, the summary" -- "$BIN" train "$TMP/strings.csv" --label y --positive yes \
    --missing drop --model "$TMP/drop.json"
grep -q "^ *1 row with missing values dropped$" "$TMP/out" ||
    fail "--missing drop, the summary: $(cat "$TMP/out")"
expect 0 "--missing mean" -- "$BIN" train "$TMP/strings.csv" --label y --positive yes \
    --missing mean --json --quiet
grep -q '"rows":5,"rows_dropped":0,' "$TMP/out" ||
    fail "--missing mean: expected 5 rows, none dropped: $(cat "$TMP/out")"
# blanks around --label go, as around header names and --features entries
expect 0 "--label with blanks" -- "$BIN" train "$DATA" --label " placement	" --json --quiet
grep -q '"label":"placement"' "$TMP/out" || fail "--label with blanks: $(cat "$TMP/out")"
expect 0 "eval --label with blanks" -- "$BIN" eval --model "$M" "$DATA" --label "placement "
expect 0 "eval --label by index" -- "$BIN" eval --model "$M" "$DATA" --label 5
grep -q "^data .*: 1000 rows, label 'placement'$" "$TMP/out" ||
    fail "eval --label by index: $(head -1 "$TMP/out")"
# the model remembers which string meant 1, so eval needs no --positive
expect 0 "train on string labels" -- "$BIN" train "$TMP/strings.csv" --label y --positive yes \
    --missing drop --model "$TMP/strings.json" --quiet
grep -q '"positive":[[:space:]]*"yes"' "$TMP/strings.json" || fail "model file: no positive value"
# predict has no drop, and fills with the model's means: its hint says so
expect 1 "a missing value in predict" -- "$BIN" predict --model "$TMP/strings.json" \
    "$TMP/strings.csv"
one_line_error "a missing value in predict" "(use --missing mean to fill in the model's training"
expect 0 "eval with the model's positive value" -- "$BIN" eval --model "$TMP/strings.json" \
    "$TMP/strings.csv" --missing drop --json
grep -q '"rows":4' "$TMP/out" || fail "eval with the model's positive value: $(cat "$TMP/out")"
expect 0 "eval --missing drop, the summary" -- "$BIN" eval --model "$TMP/strings.json" \
    "$TMP/strings.csv" --missing drop
grep -q "^data .*strings.csv: 4 rows, label 'y' (1 row with missing values dropped)$" "$TMP/out" ||
    fail "eval --missing drop, the summary: $(head -1 "$TMP/out")"
# --missing error is the default, said out loud
expect 1 "--missing error" -- "$BIN" train "$TMP/strings.csv" --label y --positive yes \
    --missing error --model "$OUT"
one_line_error "--missing error" "strings.csv:3:2:"
# a model that keeps no means cannot fill gaps; a model without a label needs --label in eval
expect 0 "train without means" -- "$BIN" train "$DATA" --no-standardize --quiet \
    --model "$TMP/nomeans.json"
expect 1 "predict --missing mean, no means" -- "$BIN" predict --model "$TMP/nomeans.json" \
    "$DATA" --missing mean
one_line_error "predict --missing mean, no means" "keeps no training means"
sed 's/"label":[[:space:]]*"placement"/"label": null/' "$M" >"$TMP/nolabel.json"
expect 1 "eval, a model without a label" -- "$BIN" eval --model "$TMP/nolabel.json" "$DATA"
one_line_error "eval, a model without a label" "names no label column; pass --label COL"
expect 0 "eval, a model without a label, --label" -- "$BIN" eval --model "$TMP/nolabel.json" \
    "$DATA" --label placement
# the delimiter by name
tr ',' '\t' <"$DATA" >"$TMP/tabs.csv"
tr ',' ' ' <"$DATA" >"$TMP/spaces.csv"
for d in tab space; do
    f=$TMP/${d}s.csv
    expect 0 "--delimiter $d" -- "$BIN" train "$f" --delimiter "$d" --json --quiet
    grep -q '"rows":1000,"rows_dropped":0,"features":5,' "$TMP/out" ||
        fail "--delimiter $d: $(cat "$TMP/out")"
done

# "-" is standard input as DATA only: as --model (or another output) it is refused, not a file
for out in model plot; do
    expect 2 "train --$out -" -- "$BIN" train "$DATA" --"$out" - --quiet
    one_line_error "train --$out -" "--$out -: standard output carries the summary"
    checks=$((checks + 1))
    [ ! -e ./- ] || fail "train --$out -: a file named - was written"
done
for cmd in predict eval; do
    expect 2 "$cmd --model -" -- "$BIN" "$cmd" --model - "$DATA"
    one_line_error "$cmd --model -" "--model -: a model is read from a file, not standard input"
done

# a duplicated column name: predict and eval cannot select by index, so they say to rename
printf 'cgpa,cgpa,iq,internships,projects,communication,placement\n' >"$TMP/dup.csv"
sed -n 2p "$DATA" | sed 's/^\([^,]*\),/\1,\1,/' >>"$TMP/dup.csv"
expect 1 "predict, a duplicated name" -- "$BIN" predict --model "$M" "$TMP/dup.csv"
one_line_error "predict, a duplicated name" "both named 'cgpa'; rename one: the model finds its"
expect 1 "eval, a duplicated name" -- "$BIN" eval --model "$M" "$TMP/dup.csv"
one_line_error "eval, a duplicated name" "rename one: .*(--label also takes a 0-based index)"

# a bad TAPEGRAD_NUM_THREADS is one warning line, and the default is used
for bad in abc 0 -1 2x; do
    checks=$((checks + 1))
    TAPEGRAD_NUM_THREADS=$bad ${TG_EMULATOR:-} "$BIN" train --json --quiet >"$TMP/out" 2>"$TMP/err" ||
        fail "TAPEGRAD_NUM_THREADS=$bad: exit status not 0"
    one_line_error "TAPEGRAD_NUM_THREADS=$bad" "warning: TAPEGRAD_NUM_THREADS=$bad is not a positive"
done
# a good one sets the default thread count (more threads than CPUs is allowed), silently
checks=$((checks + 1))
TAPEGRAD_NUM_THREADS=3 ${TG_EMULATOR:-} "$BIN" train --json --quiet >"$TMP/out" 2>"$TMP/err" ||
    fail "TAPEGRAD_NUM_THREADS=3: exit status not 0"
grep -q '"threads":3[,}]' "$TMP/out" || fail "TAPEGRAD_NUM_THREADS=3: $(cat "$TMP/out")"
[ -s "$TMP/err" ] && fail "TAPEGRAD_NUM_THREADS=3: stderr: $(cat "$TMP/err")"

# '-' reads the data from standard input, here a pipe
checks=$((checks + 1))
cat "$DATA" | ${TG_EMULATOR:-} "$BIN" train - --label placement --model "$TMP/stdin.json" --quiet ||
    fail "train - from a pipe failed"
cmp -s "$TMP/stdin.json" "$M" || fail "train - from a pipe: not the model trained on the file"

# predict and eval fill a gap with the model's training mean, not the mean of the scored rows
head -1 "$DATA" >"$TMP/gap.csv"
sed -n 2p "$DATA" | awk -F, 'BEGIN { OFS = "," } { $2 = ""; print }' >>"$TMP/gap.csv"
IQ_MEAN=$(grep '"mean"' "$M" | sed 's/.*\[//; s/\].*//' | cut -d, -f2 | tr -d ' \t')
sed "2s/,,/,$IQ_MEAN,/" "$TMP/gap.csv" >"$TMP/filled.csv"
expect 0 "predict --missing mean, one row" -- "$BIN" predict --model "$M" "$TMP/filled.csv" --proba
cp "$TMP/out" "$TMP/filled.out"
expect 0 "predict --missing mean, one row" -- "$BIN" predict --model "$M" "$TMP/gap.csv" --proba \
    --missing mean
cmp -s "$TMP/out" "$TMP/filled.out" ||
    fail "--missing mean: $(cat "$TMP/out") is not the prediction at the training mean $IQ_MEAN"
# train --missing mean fills with the training rows' means, which the model keeps: eval with
# them on the whole file is then the row-weighted mean of train's training and validation log
# losses. (Filling with every row's means, the validation rows' included, misses by ~1e-4.)
awk -F, 'BEGIN { OFS = "," } NR > 1 && NR % 4 == 0 { $2 = "" } NR > 1 && NR % 5 == 0 { $1 = "NA" }
    { print }' "$DATA" >"$TMP/gaps.csv"
# With and without standardization: the model keeps the values it filled with either way.
for std in "" --no-standardize; do
    # shellcheck disable=SC2086
    expect 0 "train --missing mean --val-split $std" -- "$BIN" train "$TMP/gaps.csv" \
        --label placement --missing mean --val-split 0.3 --seed 4 --json --quiet \
        --model "$TMP/gaps.json" $std
    mv "$TMP/out" "$TMP/gaps_train.out"
    expect 0 "eval --missing mean $std" -- "$BIN" eval --model "$TMP/gaps.json" "$TMP/gaps.csv" \
        --missing mean --json
    checks=$((checks + 1))
    cat "$TMP/gaps_train.out" "$TMP/out" | tr ',{}' '\n\n\n' | awk -F: '
        { gsub(/"/, "", $1); v[$1] = $2 }
        $1 == "log_loss" {
            n = v["train_rows"] + v["val_rows"]
            want = (v["train_rows"] * v["train_log_loss"] + v["val_rows"] * v["val_log_loss"]) / n
            d = $2 - want
            if (d < 0) d = -d
            if (d > 1e-6 || v["val_rows"] != 300) { print "eval " $2 ", train and validation " want; exit 1 }
        }' || fail "--missing mean $std: the model's means are not the ones train filled with"
done
expect 2 "predict --missing drop" -- "$BIN" predict --model "$M" "$TMP/gap.csv" --missing drop
one_line_error "predict --missing drop" "--missing drop"
sed -n 3,5p "$DATA" | cat "$TMP/gap.csv" - >"$TMP/evalgap.csv"
expect 0 "eval --missing drop" -- "$BIN" eval --model "$M" "$TMP/evalgap.csv" --missing drop \
    --json
grep -q '"rows":3,"rows_dropped":1' "$TMP/out" || fail "eval --missing drop: $(cat "$TMP/out")"

echo "$checks checks, $failures failures"
[ "$failures" -eq 0 ]
