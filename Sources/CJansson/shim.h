#ifndef SWERVE_CJANSSON_SHIM_H
#define SWERVE_CJANSSON_SHIM_H
#include <stdbool.h>
#include <jansson.h>

/* jansson's type tests and reference counting are macros or inline functions; re-export them. */
static inline int swerve_json_typeof(const json_t *j) { return (int)json_typeof(j); }
static inline void swerve_json_decref(json_t *j) { json_decref(j); }
static inline json_t *swerve_json_incref(json_t *j) { return json_incref(j); }
static inline size_t swerve_json_real_precision(int n) { return JSON_REAL_PRECISION(n); }
#endif
