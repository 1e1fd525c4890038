/* Shared pieces of the `tapegrad` command: argument parsing, CSV options, output helpers. */
#ifndef TG_CLI_H
#define TG_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "file_replace.h"
#include "tapegrad.h"
#include "tapegrad/dist.h"
#include "tapegrad/train.h"
#include "utf8.h"

/* Exit codes: documented in `tapegrad --help`. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* ---- argument parsing (args.c) ----------------------------------------------------------- */
typedef enum { OPT_FLAG, OPT_INT, OPT_INT64, OPT_DOUBLE, OPT_STRING, OPT_CHAR } opt_kind;

typedef struct cli_opt {
    const char *name; /* without the leading "--" */
    opt_kind kind;
    void *target;  /* bool, int, int64_t, double, const char *, char */
    double lo, hi; /* accepted range for numbers (inclusive) */
    bool *seen;    /* set when the option appears (may be NULL) */
} cli_opt;

/* Parses argv[0..argc) against opts; positionals go to pos (at most max_pos). Prints a one-line
 * error naming the command and returns false on a bad or unknown option. *help is set by
 * -h/--help. */
bool cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, const char **pos,
               int max_pos, int *n_pos, bool *help);

/* Splits "a,b,c" into a NULL-terminated malloc'd array of malloc'd strings; NULL on OOM. */
char **cli_split_list(const char *s, int *n);
/* *s without the blanks around it, as the reader takes header names (" label" names "label").
 * *s must point into argv, whose strings may be written; NULL stays NULL. */
void cli_trim_name(const char **s);
void cli_free_list(char **list);

/* ---- CSV input shared by train / predict / eval ------------------------------------------ */
typedef struct cli_csv {
    bool no_header;
    int64_t skip_rows;
    const char *delimiter; /* one character, or "tab" / "\t"; NULL = detect */
    const char *positive;  /* label value meaning 1 when labels are two strings; NULL */
    const char *missing;   /* "error" (NULL), "drop" or "mean" */
} cli_csv;

/* The option-table rows of the CSV settings, shared by train, predict and eval so a new CSV
 * flag is added in one place. `c` is a cli_csv lvalue. */
/* clang-format off */
#define CLI_CSV_OPTIONS(c)                                                                         \
    {"no-header", OPT_FLAG, &(c).no_header, 0, 0, NULL},                                           \
    {"skip-rows", OPT_INT64, &(c).skip_rows, 0, 9007199254740992.0, NULL},                         \
    {"delimiter", OPT_CHAR, &(c).delimiter, 0, 0, NULL},                                           \
    {"positive", OPT_STRING, &(c).positive, 0, 0, NULL},                                           \
    {"missing", OPT_STRING, &(c).missing, 0, 0, NULL}
/* clang-format on */

/* Fills opt from the command-line CSV settings; false (with a message) on a bad delimiter or
 * --missing value. */
bool cli_csv_options(const char *cmd, const cli_csv *in, tg_csv_options *opt);
/* Checks the CSV options up front, so a bad value is a usage error (exit 2) found before any
 * file is opened. */
bool cli_csv_valid(const char *cmd, const cli_csv *in);

/* ---- output helpers (util.c) ------------------------------------------------------------- */
/* A descriptor 0-2 the caller closed (`tapegrad train >&-`) would be handed to the next file
 * opened, and the summary meant for stdout would land in the model file. Each closed one gets
 * /dev/null opened read-only, so reads see end of file and writes fail (EBADF) as they did;
 * an output path naming one (/dev/stdout) fails too. Called first thing in main. */
void cli_hold_std_fds(void);
/* Whether path names one of the descriptors cli_hold_std_fds filled (/dev/stdin, /dev/fd/1,
 * ...): a closed descriptor, whatever now holds its number. */
bool cli_std_closed(const char *path);
/* False, with "PATH: cannot read: standard input is closed", when the data path names a
 * descriptor the caller closed (`-` with stdin closed); otherwise true. */
bool cli_input_open(const char *cmd, const char *path);
/* The readers map their input, and a file cut short while it is read faults (SIGBUS) on the
 * pages past its new end: from cli_reading(cmd, path) to cli_reading(NULL, NULL) that fault
 * prints one line naming the file and exits with EXIT_FAIL instead of crashing. Nothing is
 * staged while data is read, so no file is left behind. */
void cli_reading(const char *cmd, const char *path);
/* "tapegrad CMD: message" on stderr, one line. */
void cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* cli_error with tg_last_error(), after `context` and before "; hint" (either may be NULL), in
 * the command's terms: option names become the flags that set them. */
void cli_lib_error(const char *cmd, const char *context, const char *hint);
/* Silences cli_error (the other ranks of a distributed run); returns the previous setting. */
bool cli_mute_errors(bool on);
/* A DATA argument as a path: "-", the usual spelling of standard input, is /dev/stdin. */
const char *cli_data_path(const char *path);
/* A model is read from a file: "-" (standard input) is refused with one line, for --model. */
bool cli_model_path_ok(const char *cmd, const char *model);
/* Flushes stdout; false with a message when anything written to it was lost (a full disk, a
 * closed pipe), so that the command does not report success. */
bool cli_stdout_done(const char *cmd);
/* The output files of one run, written all or none: cli_files_stage writes every file to a
 * temporary beside its target and syncs it (on failure it removes them all, with a message);
 * the caller then does whatever else can still fail (standard output), and cli_files_commit
 * renames them into place in order, or cli_files_discard removes them. A device or FIFO target
 * (/dev/stdout) cannot be staged: it is written at commit, before any rename, so a failed
 * device write leaves no file in place. Entries with a NULL path are skipped. */
typedef struct cli_file {
    const char *path;
    const char *data;
    size_t len;
    tg_replace r; /* private */
    bool staged;  /* private */
} cli_file;
bool cli_files_stage(const char *cmd, cli_file *files, int n);
bool cli_files_commit(const char *cmd, cli_file *files, int n);
void cli_files_discard(cli_file *files, int n);
double cli_now(void);

/* A growable text buffer for generated files. */
typedef struct cli_buf {
    char *data;
    size_t len, cap;
    bool oom;
} cli_buf;
void cli_buf_printf(cli_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void cli_buf_free(cli_buf *b);

/* ---- progress bar (progress.c) ----------------------------------------------------------- */
typedef struct cli_progress {
    bool on;     /* stderr is a terminal and not --quiet */
    double last; /* time of the last redraw */
    int width;   /* bar cells */
    bool drawn;  /* a line is on screen and must be finished */
} cli_progress;

void cli_progress_init(cli_progress *p, bool quiet);
/* A status line ("reading placement.csv (1.2 MB)"), replaced by the next draw. */
void cli_progress_status(cli_progress *p, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* "reading PATH (MB): done / total rows" while a file is read; redrawn at most every 50 ms,
 * and always when done reaches total. */
void cli_progress_rows(cli_progress *p, const char *path, double mb, int64_t done, int64_t total);
/* The iteration bar; redrawn at most every 50 ms unless force. */
void cli_progress_iter(cli_progress *p, int iter, int max_iter, double loss, double val_loss,
                       bool force);
void cli_progress_done(cli_progress *p); /* clears the line */

/* ---- training curves (curves.c) ---------------------------------------------------------- */
/* CSV of the history: iteration,train_loss,objective,val_loss,grad_max,seconds. */
char *cli_history_csv(const tg_logreg_step *h, int n, size_t *len);
/* An SVG line chart of training (and validation) loss per iteration. */
char *cli_history_svg(const tg_logreg_step *h, int n, const char *title, size_t *len);

/* ---- distributed runs (dist.c) ----------------------------------------------------------- */
bool cli_dist_wanted(int argc, char **argv); /* --distributed among the arguments */
/* Starts MPI and mutes cli_error on ranks other than 0; an exit code on failure (and a message,
 * e.g. "built without MPI"). */
int cli_dist_begin(const char *cmd);
/* Agrees on the exit code (the worst of every rank's) and finalizes MPI. Every rank must call
 * it, on every path, once cli_dist_begin succeeded. */
int cli_dist_end(int rc);
/* Prints tg_last_error() (after context and before hint, when not NULL) if this is the rank
 * that failed in the last collective call. */
void cli_dist_error(const char *cmd, const char *context, const char *hint);
int64_t cli_dist_sum(int64_t v); /* sum over the ranks */

/* ---- commands ---------------------------------------------------------------------------- */
int cmd_train(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_eval(int argc, char **argv);

/* Model + CSV loading shared by predict and eval (cmd_predict.c). label: NULL for predict. m is
 * loaded from model_path unless it already holds a model (eval loads it first to learn the
 * label; a model read from a pipe can be read only once). */
bool cli_load_for_model(const char *cmd, const char *model_path, const char *data_path,
                        const cli_csv *csv, const char *label, tg_logreg_model *m,
                        tg_csv_data *data);

#endif
