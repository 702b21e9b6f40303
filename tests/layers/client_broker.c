/* client_broker.c -- libtombo's sources may not include the broker (wrong way: must not compile). */
#include "broker/conn.h"
