/* Step 1 of the CSV reader (src/io/csv.c): where the rows start. Internal; declared here so
 * that tests can check it against a reference (the trailing underscores). */
#ifndef TG_IO_CSV_SPLIT_H
#define TG_IO_CSV_SPLIT_H

#include <stdbool.h>
#include <stdint.h>

/* Row starts in file order; v is malloc'd with room for cap. */
typedef struct {
    const char **v;
    int64_t n, cap;
} tg_csv_rows_;

/* Appends to rows the start of every row that is not a blank line (only ' ' and '\r'), from p
 * (a row start) on. A row ends at the first '\n' with an even number of quotes before it,
 * counted from the row start. Stops at the first row that starts at or after stop, or after
 * max_rows rows; *resume (may be NULL) gets the row start it stopped at, or end. Reads nothing
 * at or after end. Returns false when out of memory. */
bool tg_csv_split_rows_(const char *p, const char *end, const char *stop, int64_t max_rows,
                        tg_csv_rows_ *rows, const char **resume);

#endif
