/*
 * GenFX OpenFX headers: the memory suite.
 *
 * Written for the GenFX project from the OpenFX 1.4/1.5 specification; the
 * ABI is the specification's, the comments are ours.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef GENFX_OFX_MEMORY_H
#define GENFX_OFX_MEMORY_H

#include "ofxCore.h"

#ifdef __cplusplus
extern "C" {
#endif

#define kOfxMemorySuite "OfxMemorySuite"

/* Host-side allocation, so large buffers count against the host's budget. */
typedef struct OfxMemorySuiteV1 {
  OfxStatus (*memoryAlloc)(void *handle, size_t nBytes, void **allocatedData);
  OfxStatus (*memoryFree)(void *allocatedData);
} OfxMemorySuiteV1;

#ifdef __cplusplus
}
#endif

#endif /* GENFX_OFX_MEMORY_H */
