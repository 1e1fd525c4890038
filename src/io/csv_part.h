/* Reading one part of a CSV file: the rows that start in a byte range. Internal: the
 * distributed reader (src/dist/dist_csv.c) drives it, one part per rank; tests drive several
 * parts in one process.
 *
 * A part cannot find its first row on its own: a '\n' ends a row only outside quotes, and
 * whether the range starts inside a quoted field depends on every quote before it. So reading
 * is in steps, with an exchange of counts between them:
 *
 *   csv_part_open    maps the file (reads nothing yet), reads the preamble, the header and the
 *                    first rows (delimiter, columns), like tg_csv_read does;
 *   csv_part_count   counts the quotes and line feeds of the range: the parts before this one
 *                    sum theirs (an exclusive prefix sum) into quotes_before and lines_before;
 *   csv_part_split   finds the rows that start in the range, given those sums;
 *   csv_part_read    parses rows [first, first + count) of the part's rows, where rows past
 *                    the part's own are the ones that follow its range in the file (so parts
 *                    can be moved to block boundaries without sending rows around).
 *
 * Ranges are byte offsets into the whole file and must tile it: [0, a), [a, b), ... [z, size).
 * The quote count starts after the preamble (the skip_rows lines, which are skipped without
 * regard to quotes, as tg_csv_read does), the line feed count at byte 0. */
#ifndef TG_IO_CSV_PART_H
#define TG_IO_CSV_PART_H

#include <stddef.h>
#include <stdint.h>

#include "tapegrad.h"

typedef struct csv_part csv_part;

/* Maps path and reads its header; *out is NULL on failure (error set, "FILE:LINE:COL: ..." for
 * a bad header). TG_MISSING_MEAN is refused (TG_EUNSUPPORTED): a mean needs every part. */
tg_status csv_part_open(const char *path, const tg_csv_options *opt, csv_part **out);
void csv_part_close(csv_part *p);

int64_t csv_part_file_size(const csv_part *p);
int csv_part_features(const csv_part *p); /* feature columns, from the header */
/* Sets the error tg_csv_read gives a file with a header and no data rows; returns TG_EPARSE. */
tg_status csv_part_no_rows(const csv_part *p);
/* Quotes (after the preamble) and line feeds in bytes [begin, end). */
void csv_part_count(const csv_part *p, int64_t begin, int64_t end, int64_t *quotes, int64_t *lines);
/* Finds the data rows that start in [begin, end); *rows gets their count. */
tg_status csv_part_split(csv_part *p, int64_t begin, int64_t end, int64_t quotes_before,
                         int64_t lines_before, int64_t *rows);
/* Parses rows [first, first + count) of the part (see above) into out. Errors name the file's
 * global line numbers. */
tg_status csv_part_read(csv_part *p, int64_t first, int64_t count, tg_csv_data *out);

/* With opt->positive: the first label value of the rows read that is not the positive one
 * (the value read as 0), or NULL if there is none; *len gets its length. */
const char *csv_part_other_label(const csv_part *p, size_t *len);
/* Sets the error for this part's other label when it differs from earlier parts' (ref), as
 * tg_csv_read words it at that field; returns TG_EPARSE. */
tg_status csv_part_label_conflict(const csv_part *p, const char *ref, size_t ref_len);

#endif
