/* errors.c -- tombo_err_t names and messages (from TOMBO_ERR_MAP) and reason-code texts. */
#include "client-int.h"

const char *tombo_strerror(int err)
{
    switch (err) {
#define TOMBO_ERR_MSG(name, val, msg) \
    case val:                         \
        return msg;
        TOMBO_ERR_MAP(TOMBO_ERR_MSG)
#undef TOMBO_ERR_MSG
    }
    return "unknown error";
}

const char *tombo_errname(int err)
{
    switch (err) {
#define TOMBO_ERR_NAME(name, val, msg) \
    case val:                          \
        return #name;
        TOMBO_ERR_MAP(TOMBO_ERR_NAME)
#undef TOMBO_ERR_NAME
    }
    return "UNKNOWN";
}

/* The v3 CONNACK texts are the ones mosquitto_sub/pub print, so tombo-sub/pub match them. */
const char *tombo_reason_string(int version, bool connack, int reason)
{
    if (connack && version != TOMBO_MQTT_V5) {
        switch (reason) {
        case 0: return "Connection Accepted.";
        case 1: return "Connection Refused: unacceptable protocol version.";
        case 2: return "Connection Refused: identifier rejected.";
        case 3: return "Connection Refused: broker unavailable.";
        case 4: return "Connection Refused: bad user name or password.";
        case 5: return "Connection Refused: not authorised.";
        }
        return "Connection Refused: unknown reason.";
    }
    return mqtt_rc_message((uint8_t)reason);
}

const char *tombo_lib_version(void)
{
    return TOMBO_VERSION;
}
