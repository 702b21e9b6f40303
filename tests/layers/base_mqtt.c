/* base_mqtt.c -- the base layer knows no MQTT (wrong way: must not compile). */
#include "mqtt/packet.h"
