/* base_ok.c -- the base layer includes itself (right way: must compile). */
#include "base/buf.h"
