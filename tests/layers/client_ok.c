/* client_ok.c -- libtombo's sources may include the codec (right way: must compile). */
#include "mqtt/packet.h"
#include "tombo/client.h"
