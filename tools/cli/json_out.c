/* Checked cJSON building for the --json outputs (see json_out.h). */
#include "json_out.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "utf8.h"

json_out json_begin(void)
{
    json_out j = {cJSON_CreateObject(), true};
    j.ok = j.o != NULL;
    return j;
}

json_out json_object(json_out *parent, const char *key)
{
    json_out c = {parent->o ? cJSON_AddObjectToObject(parent->o, key) : NULL, true};
    c.ok = c.o != NULL;
    return c;
}

void json_merge(json_out *parent, const json_out *child)
{
    parent->ok = parent->ok && child->ok;
}

void json_num(json_out *j, const char *key, double v)
{
    if (!j->o)
        return;
    cJSON *item =
        isfinite(v) ? cJSON_AddNumberToObject(j->o, key, v) : cJSON_AddNullToObject(j->o, key);
    j->ok = j->ok && item != NULL;
}

void json_str(json_out *j, const char *key, const char *s)
{
    if (!j->o)
        return;
    /* a file name need not be UTF-8; the JSON must be (the bad bytes become U+FFFD) */
    char *clean = s && !cli_utf8_valid(s) ? cli_utf8_clean(s) : NULL;
    if (clean)
        s = clean;
    cJSON *item = s ? cJSON_AddStringToObject(j->o, key, s) : cJSON_AddNullToObject(j->o, key);
    j->ok = j->ok && item != NULL;
    free(clean);
}

bool json_print(json_out *j)
{
    char *text = j->ok ? cJSON_PrintUnformatted(j->o) : NULL;
    cJSON_Delete(j->o);
    j->o = NULL;
    if (!text)
        return false;
    bool ok = printf("%s\n", text) > 0;
    cJSON_free(text);
    return ok;
}
