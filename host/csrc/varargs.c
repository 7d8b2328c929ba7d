/*
 * The few OpenFX host entry points that are C variadic functions.
 *
 * The parameter suite's get/set calls and the message suite's printf-style
 * calls take `...`. Stable Rust can call variadic C functions but cannot
 * define them, so these thin shims read the va_list here and forward to Rust
 * entry points with fixed signatures (host/src/suites/param.rs and
 * host/src/suites/message.rs). No logic lives here beyond reading arguments.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

typedef int OfxStatus;
typedef double OfxTime;

enum { KIND_INT = 0, KIND_DOUBLE = 1, KIND_STRING = 2 };
enum { GET_VALUE = 0, GET_AT_TIME = 1, GET_DERIVATIVE = 2, GET_INTEGRAL = 3 };
#define MAX_DIM 4

/* Rust: how many values a parameter has and of which kind. */
extern OfxStatus genfx_host_param_shape(void *param, int *kind, int *count);
/* Rust: store the parameter's value(s) into the `count` output pointers. */
extern OfxStatus genfx_host_param_get(void *param, int mode, double t1, double t2,
                                      void **outs, int count);
/* Rust: set the parameter from the values read here. */
extern OfxStatus genfx_host_param_set(void *param, int at_time, double time,
                                      const int *ints, const double *doubles,
                                      const char *text, int count);
/* Rust: record a formatted message. `persistent`: 1 for setPersistentMessage. */
extern OfxStatus genfx_host_message(void *handle, const char *type, const char *id,
                                    const char *text, int persistent);

static OfxStatus read_outs(void *param, int mode, double t1, double t2, va_list ap) {
  int kind = 0, count = 0;
  OfxStatus st = genfx_host_param_shape(param, &kind, &count);
  if (st != 0) return st;
  if (count < 1 || count > MAX_DIM) return 3; /* kOfxStatErrUnknown: no value */
  void *outs[MAX_DIM];
  for (int i = 0; i < count; i++) outs[i] = va_arg(ap, void *);
  return genfx_host_param_get(param, mode, t1, t2, outs, count);
}

static OfxStatus read_ins(void *param, int at_time, double time, va_list ap) {
  int kind = 0, count = 0;
  OfxStatus st = genfx_host_param_shape(param, &kind, &count);
  if (st != 0) return st;
  if (count < 1 || count > MAX_DIM) return 3;
  int ints[MAX_DIM] = {0};
  double doubles[MAX_DIM] = {0};
  const char *text = NULL;
  for (int i = 0; i < count; i++) {
    switch (kind) {
      case KIND_INT: ints[i] = va_arg(ap, int); break;
      case KIND_DOUBLE: doubles[i] = va_arg(ap, double); break;
      default: text = va_arg(ap, const char *); break;
    }
  }
  return genfx_host_param_set(param, at_time, time, ints, doubles, text, count);
}

OfxStatus genfx_host_paramGetValue(void *param, ...) {
  va_list ap;
  va_start(ap, param);
  OfxStatus st = read_outs(param, GET_VALUE, 0.0, 0.0, ap);
  va_end(ap);
  return st;
}

OfxStatus genfx_host_paramGetValueAtTime(void *param, OfxTime time, ...) {
  va_list ap;
  va_start(ap, time);
  OfxStatus st = read_outs(param, GET_AT_TIME, time, 0.0, ap);
  va_end(ap);
  return st;
}

OfxStatus genfx_host_paramGetDerivative(void *param, OfxTime time, ...) {
  va_list ap;
  va_start(ap, time);
  OfxStatus st = read_outs(param, GET_DERIVATIVE, time, 0.0, ap);
  va_end(ap);
  return st;
}

OfxStatus genfx_host_paramGetIntegral(void *param, OfxTime t1, OfxTime t2, ...) {
  va_list ap;
  va_start(ap, t2);
  OfxStatus st = read_outs(param, GET_INTEGRAL, t1, t2, ap);
  va_end(ap);
  return st;
}

OfxStatus genfx_host_paramSetValue(void *param, ...) {
  va_list ap;
  va_start(ap, param);
  OfxStatus st = read_ins(param, 0, 0.0, ap);
  va_end(ap);
  return st;
}

OfxStatus genfx_host_paramSetValueAtTime(void *param, OfxTime time, ...) {
  va_list ap;
  va_start(ap, time);
  OfxStatus st = read_ins(param, 1, time, ap);
  va_end(ap);
  return st;
}

static OfxStatus format_message(void *handle, const char *type, const char *id,
                                const char *format, va_list ap, int persistent) {
  if (format == NULL) return genfx_host_message(handle, type, id, NULL, persistent);
  va_list copy;
  va_copy(copy, ap);
  int needed = vsnprintf(NULL, 0, format, copy);
  va_end(copy);
  if (needed < 0) return genfx_host_message(handle, type, id, format, persistent);
  char *text = malloc((size_t)needed + 1);
  if (text == NULL) return 8; /* kOfxStatErrMemory */
  vsnprintf(text, (size_t)needed + 1, format, ap);
  OfxStatus st = genfx_host_message(handle, type, id, text, persistent);
  free(text);
  return st;
}

OfxStatus genfx_host_message_v(void *handle, const char *type, const char *id,
                               const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  OfxStatus st = format_message(handle, type, id, format, ap, 0);
  va_end(ap);
  return st;
}

OfxStatus genfx_host_persistent_message_v(void *handle, const char *type, const char *id,
                                          const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  OfxStatus st = format_message(handle, type, id, format, ap, 1);
  va_end(ap);
  return st;
}
