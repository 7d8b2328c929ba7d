/*
 * GenFX OpenFX headers: the progress suite.
 *
 * Written for the GenFX project from the OpenFX 1.4/1.5 specification; the
 * ABI is the specification's, the comments are ours.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef GENFX_OFX_PROGRESS_H
#define GENFX_OFX_PROGRESS_H

#include "ofxCore.h"

#ifdef __cplusplus
extern "C" {
#endif

#define kOfxProgressSuite "OfxProgressSuite"

/* Progress is a fraction in [0, 1]. progressUpdate answers kOfxStatReplyNo
 * when the user asked to stop. */
typedef struct OfxProgressSuiteV1 {
  OfxStatus (*progressStart)(void *effectInstance, const char *label);
  OfxStatus (*progressUpdate)(void *effectInstance, double progress);
  OfxStatus (*progressEnd)(void *effectInstance);
} OfxProgressSuiteV1;

/* Version 2 gives the progress bar an identifier as well as a label. */
typedef struct OfxProgressSuiteV2 {
  OfxStatus (*progressStart)(void *effectInstance, const char *message, const char *messageid);
  OfxStatus (*progressUpdate)(void *effectInstance, double progress);
  OfxStatus (*progressEnd)(void *effectInstance);
} OfxProgressSuiteV2;

#ifdef __cplusplus
}
#endif

#endif /* GENFX_OFX_PROGRESS_H */
