/* Library version, kept in one place: CMake passes it in from project(). */
#include "tapegrad.h"

#ifndef TG_VERSION
#define TG_VERSION "0.0.0"
#endif

const char *tg_version_string(void) { return TG_VERSION; }
