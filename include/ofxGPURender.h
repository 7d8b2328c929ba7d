/*
 * GenFX OpenFX headers: GPU render properties (the CUDA subset).
 *
 * Written for the GenFX project from the OpenFX 1.5 specification; the names
 * and values are the specification's, the comments are ours. Only the CUDA
 * properties and the GPU status codes are declared: GenFX neither offers
 * OpenGL, OpenCL nor Metal render.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef GENFX_OFX_GPU_RENDER_H
#define GENFX_OFX_GPU_RENDER_H

#include "ofxImageEffect.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Host and plug-in both set this string: "false", "true" or "needed". */
#define kOfxImageEffectPropCudaRenderSupported "OfxImageEffectPropCudaRenderSupported"
/* Int 0/1 in render arguments: when 1, image data pointers are CUDA device
 * memory. */
#define kOfxImageEffectPropCudaEnabled "OfxImageEffectPropCudaEnabled"
/* String "false"/"true"/"needed": whether a stream can be passed. */
#define kOfxImageEffectPropCudaStreamSupported "OfxImageEffectPropCudaStreamSupported"
/* Pointer (a cudaStream_t) to enqueue work on; the plug-in must not
 * synchronise it before returning. */
#define kOfxImageEffectPropCudaStream "OfxImageEffectPropCudaStream"

#define kOfxStatGPUOutOfMemory 1001
#define kOfxStatGPURenderFailed 1002

#ifdef __cplusplus
}
#endif

#endif /* GENFX_OFX_GPU_RENDER_H */
