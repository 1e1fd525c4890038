/* The --json objects of train and eval. Every add is checked: a field lost to a failed
 * allocation makes the command fail, rather than print an object without it and exit 0. */
#ifndef TG_CLI_JSON_OUT_H
#define TG_CLI_JSON_OUT_H

#include <stdbool.h>

#include <cJSON.h>

typedef struct {
    cJSON *o;
    bool ok; /* every add so far went in */
} json_out;

json_out json_begin(void);
/* A nested object under key; its adds count for the parent's ok. */
json_out json_object(json_out *parent, const char *key);
void json_num(json_out *j, const char *key, double v);      /* null when v is not finite */
void json_str(json_out *j, const char *key, const char *s); /* null when s is NULL */
void json_merge(json_out *parent, const json_out *child);
/* Prints the object on one line and frees it. false when an add or the printing failed. */
bool json_print(json_out *j);

#endif
