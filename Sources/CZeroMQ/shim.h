#ifndef ECP_CZEROMQ_SHIM_H
#define ECP_CZEROMQ_SHIM_H
#include <zmq.h>
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

/// errno as libzmq set it (a macro in C, so Swift needs a function).
static inline int czmq_errno(void) { return zmq_errno(); }
#endif
