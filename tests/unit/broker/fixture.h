/* fixture.h -- the broker the unit tests of tests/unit/broker/ run on: a broker_t built by hand as
 * broker_init builds it, minus listeners and the auth thread (no socket, no thread started), and
 * connections that are zeroed conn_t with a worker and no socket. One copy for every test file. */
#ifndef TOMBO_TEST_BROKER_FIXTURE_H
#define TOMBO_TEST_BROKER_FIXTURE_H

#include <stdint.h>

#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/worker.h"

/* A broker with config_init's defaults in b->cfg, nothing else built yet: set what the test needs
 * in b->cfg, then fixture_broker_start. */
broker_t *fixture_broker_new(void);
/* Build the registry, backpressure marks (from b->cfg), tree, retained store and n_workers workers
 * (initialised, not started); the calling thread plays worker 0 (its slab pool). With `store_path`,
 * open the persistence store on it and load it, as broker_init does. Aborts the test on failure. */
void fixture_broker_start(broker_t *b, int n_workers, const char *store_path);
/* broker_free (the store stops first), then the config and b itself. */
void fixture_broker_free(broker_t *b);

/* A connection on worker w at protocol `version`, attached to nothing, with no socket: output is
 * only appended to c->out, for the test to decode. */
void fixture_conn(conn_t *c, worker_t *w, uint64_t id, uint8_t version);

#endif
