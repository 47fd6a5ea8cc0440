#ifndef SWERVE_COPENBLAS_SHIM_H
#define SWERVE_COPENBLAS_SHIM_H
/* The include path comes from pkg-config "openblas" (the openblas-pthread directory on Debian). */
#include <cblas.h>
#endif
