/* log_topic.h -- `log_dest topic`: the log published on $SYS/broker/log/<X>, as Mosquitto does
 * (E, W, N, I; M/subscribe and M/unsubscribe for those log types; never debug lines).
 *
 * Design: any thread may log, but only a worker may publish (route_publish needs its loop). The
 * base log's topic hook copies the line into a bounded FIFO under a mutex (LOG_TOPIC_MAX lines;
 * beyond that lines are dropped and counted, so a log storm cannot grow memory), and worker 0
 * publishes what waits at each turn of its loop (within WHEEL_TICK_MS when it is idle). Lines the
 * publication itself logs are not re-published (the base log's guard). QoS 0, not retained. */
#ifndef TOMBO_BROKER_LOG_TOPIC_H
#define TOMBO_BROKER_LOG_TOPIC_H

#include <stdint.h>

struct broker;
struct worker;

#define LOG_TOPIC_MAX 1024

/* Set the FIFO up and register the hook (the log calls it only while log_dest has topic). */
void log_topic_start(struct broker *b);
/* Worker 0, each loop turn: publish the waiting lines. */
void log_topic_drain(struct worker *w);
/* After every thread that logs is stopped: unregister the hook, free what waits. */
void log_topic_stop(struct broker *b);
/* Lines dropped because the FIFO was full. */
uint64_t log_topic_dropped(const struct broker *b);

#endif
