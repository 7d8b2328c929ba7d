/*
 * GenFX OpenFX headers: the multi-thread suite.
 *
 * Written for the GenFX project from the OpenFX 1.4/1.5 specification; the
 * ABI is the specification's, the comments are ours.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef GENFX_OFX_MULTITHREAD_H
#define GENFX_OFX_MULTITHREAD_H

#include "ofxCore.h"

#ifdef __cplusplus
extern "C" {
#endif

#define kOfxMultiThreadSuite "OfxMultiThreadSuite"

/* Opaque host mutex. */
typedef struct OfxMutex *OfxMutexHandle;

/* Body run on each of the host's worker threads by multiThread. */
typedef void(OfxThreadFunctionV1)(unsigned int threadIndex, unsigned int threadMax, void *customArg);

typedef struct OfxMultiThreadSuiteV1 {
  OfxStatus (*multiThread)(OfxThreadFunctionV1 func, unsigned int nThreads, void *customArg);
  OfxStatus (*multiThreadNumCPUs)(unsigned int *nCPUs);
  OfxStatus (*multiThreadIndex)(unsigned int *threadIndex);
  int (*multiThreadIsSpawnedThread)(void);
  OfxStatus (*mutexCreate)(OfxMutexHandle *mutex, int lockCount);
  OfxStatus (*mutexDestroy)(const OfxMutexHandle mutex);
  OfxStatus (*mutexLock)(const OfxMutexHandle mutex);
  OfxStatus (*mutexUnLock)(const OfxMutexHandle mutex);
  OfxStatus (*mutexTryLock)(const OfxMutexHandle mutex);
} OfxMultiThreadSuiteV1;

#ifdef __cplusplus
}
#endif

#endif /* GENFX_OFX_MULTITHREAD_H */
