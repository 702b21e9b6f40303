/* mqtt_base.c -- the codec stands alone, not even on the base layer (wrong way: must not compile). */
#include "base/buf.h"
