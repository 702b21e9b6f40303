/* topic.h -- MQTT topic names, topic filters, wildcard matching and shared subscriptions. */
#ifndef TOMBO_MQTT_TOPIC_H
#define TOMBO_MQTT_TOPIC_H

#include "mqtt/mqtt.h"

/* A topic name a PUBLISH may carry: valid MQTT UTF-8, at least 1 byte, no '+' or '#'. */
bool mqtt_topic_name_valid(const uint8_t *s, size_t n);
/* A topic filter: valid MQTT UTF-8, at least 1 byte, '+' alone in its level, '#' alone in the last
 * level. $share/{group}/{filter} is accepted when group is non-empty and has no '+', '#' or '/',
 * and filter is a valid filter. */
bool mqtt_topic_filter_valid(const uint8_t *s, size_t n);
/* Does `filter` match topic `name`? Wildcards at the first level do not match names starting with
 * '$' [MQTT-4.7.2-1]. `filter` must not be a $share filter (strip it with mqtt_share_split). */
bool mqtt_topic_match(const uint8_t *filter, size_t fn, const uint8_t *name, size_t nn);
/* If `s` is "$share/GROUP/FILTER", set *group and *filter to views into s and return true. */
bool mqtt_share_split(const uint8_t *s, size_t n, const uint8_t **group, size_t *gn, const uint8_t **filter,
                      size_t *fn);

#endif
