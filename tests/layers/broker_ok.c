/* broker_ok.c -- the broker sees base, codec, password hashes and itself (right way: must compile). */
#include "base/buf.h"
#include "broker/conn.h"
#include "mqtt/packet.h"
#include "pwhash/pwhash.h"
