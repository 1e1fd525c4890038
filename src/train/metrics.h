/* Metrics on raw arrays, shared by the trainer and tg_binary_metrics_compute. Internal. */
#ifndef TG_TRAIN_METRICS_H
#define TG_TRAIN_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "tapegrad.h"
#include "tapegrad/train.h"

/* y: n labels 0/1, z: n logits. false + error on out of memory. */
bool lr_metrics(const float *y, const float *z, int64_t n, tg_binary_metrics *out);
/* The same with sums over blocks of block_rows rows (the trainer passes lr_align_rows(d), so
 * the blocks follow the ranks of a distributed fit). dist: every rank passes its own rows and
 * gets the metrics of all of them (collective; failures are agreed across the ranks). */
bool lr_metrics_ex(const float *y, const float *z, int64_t n, int64_t block_rows, bool dist,
                   tg_binary_metrics *out);

#endif
