/* The ranges of tg_logreg_options (logreg.c), shared by the fit and the model file. Internal. */
#ifndef TG_TRAIN_OPTIONS_H
#define TG_TRAIN_OPTIONS_H

#include "tapegrad.h"
#include "tapegrad/train.h"

/* The options' ranges, which tg_logreg_fit accepts and a model file keeps: TG_EINVAL naming fn
 * and the option otherwise (tg_logreg_save checks a model's options with it, so it never
 * writes a file that tg_logreg_load would refuse). */
tg_status lr_check_options(const tg_logreg_options *o, const char *fn);

/* 2^53: the largest count (batch size, rows) a model file, whose numbers are doubles, keeps
 * exactly. */
#define LR_MAX_EXACT_INT 9007199254740992.0

#endif
