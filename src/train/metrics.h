/* Metrics on raw arrays, shared by the trainer and tg_binary_metrics_compute. Internal. */
#ifndef TG_TRAIN_METRICS_H
#define TG_TRAIN_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "tapegrad.h"
#include "tapegrad/train.h"

/* y: n labels 0/1, z: n logits. false + error on out of memory. */
bool lr_metrics(const float *y, const float *z, int64_t n, tg_binary_metrics *out);

#endif
