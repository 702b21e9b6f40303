/* rc.c -- names and messages of MQTT reason codes and packet types, generated from the X-macro
 * tables in mqtt.h so they cannot drift from the enum values. */
#include "mqtt/mqtt.h"

const char *mqtt_rc_name(uint8_t rc)
{
    switch (rc) {
#define MQTT_RC_NAME_CASE(name, val, msg) \
    case val:                             \
        return #name;
        MQTT_RC_MAP(MQTT_RC_NAME_CASE)
#undef MQTT_RC_NAME_CASE
    }
    return "UNKNOWN";
}

const char *mqtt_rc_message(uint8_t rc)
{
    switch (rc) {
#define MQTT_RC_MSG_CASE(name, val, msg) \
    case val:                            \
        return msg;
        MQTT_RC_MAP(MQTT_RC_MSG_CASE)
#undef MQTT_RC_MSG_CASE
    }
    return "unknown reason code";
}

const char *mqtt_type_name(uint8_t type)
{
    static const char *const names[16] = {
        "RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
        "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
    };
    return type < 16 ? names[type] : "RESERVED";
}
