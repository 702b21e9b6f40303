/* slab.h -- transitional: the slab allocator is the base layer's now (base/slab.h). msg.c and the
 * unit tests (branch arch) still include this path; once they include base/slab.h, this file
 * goes. */
#ifndef TOMBO_BROKER_SLAB_H
#define TOMBO_BROKER_SLAB_H

#include "base/slab.h"

#endif
