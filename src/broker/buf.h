/* buf.h -- transitional: byte buffers and abort-on-OOM allocation are the base layer's now
 * (base/buf.h, base/mem.h). store.c, msg.c and the unit tests (branch arch) still include this
 * path; once they include the base headers, this file goes. */
#ifndef TOMBO_BROKER_BUF_H
#define TOMBO_BROKER_BUF_H

#include "base/buf.h"
#include "base/mem.h"

#endif
