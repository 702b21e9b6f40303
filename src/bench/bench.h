/* bench.h -- tombo-bench internals: the run configuration, connections, per-thread engine state
 * and the statistics they feed. One header because the pieces (options, engine, scenarios,
 * stats, report, plot) are small and share these types; nothing here is public API. */
#ifndef TOMBO_BENCH_H
#define TOMBO_BENCH_H

#include "base/clock.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Every payload starts with this header (little-endian, 32 bytes); the rest is filler:
 *   0 magic "TBv1" | 4 run nonce | 8 publisher id | 12 reserved | 16 sequence | 24 send time (ns,
 *   CLOCK_MONOTONIC). The nonce keeps messages of an earlier run still queued in a broker from
 *   being counted. */
#define BENCH_MAGIC 0x31764254u /* "TBv1" */
#define BENCH_PAYLOAD_MIN 32
/* Largest payload. A packet larger than one 64 KB read is completed in its connection's own
 * input buffer (engine.c conn_read_big). */
#define BENCH_PAYLOAD_MAX (16u << 20)
#define BENCH_READ_SIZE 65536
/* A connection stops generating once this many bytes wait in its output buffer. */
#define BENCH_OUT_HIGH 65536
#define BENCH_MAX_SUB_PORTS 16 /* --sub-port list */

enum bench_mode { MODE_CONN, MODE_PUB, MODE_SUB, MODE_PAIRS, MODE_FANIN, MODE_FANOUT, MODE_RETAINED, MODE_STORM };

/* Run phases, advanced by the main thread only (engine threads read them). */
enum bench_phase { PH_CONNECT, PH_RUN, PH_DRAIN, PH_STOP };

typedef struct bench_cfg {
    enum bench_mode mode;
    const char *host;
    int port;
    /* --sub-port P1[,P2...]: subscriber i connects to sub_ports[i % nsub_ports] (other cluster
     * nodes); nsub_ports 0: every client on -p */
    int sub_ports[BENCH_MAX_SUB_PORTS];
    int nsub_ports;
    double settle;        /* --settle: seconds between the last SUBACK and the first PUBLISH */
    int version;          /* 3, 4 or 5 */
    uint32_t clients;     /* -c: meaning depends on the mode */
    uint32_t pubs, subs;  /* -P / -S, resolved by scenario_setup */
    uint32_t idle;        /* conn mode: clients that only hold a connection */
    int qos;
    uint32_t payload;     /* bytes */
    double rate;          /* msg/s per publisher, 0 = as fast as possible */
    uint32_t window;      /* in-flight PUBLISH per publisher at QoS 1/2 */
    double duration;      /* measured seconds */
    double warmup;        /* seconds before the measurement starts */
    double drain;         /* max seconds to wait for in-flight messages after the end */
    double connect_timeout;
    const char *topic;    /* template, %i = publisher index */
    const char *filter;   /* subscriber filter templates, comma-separated (subscriber i takes the
                             i-th mod their number); NULL = derived from the scenario */
    uint32_t topics;      /* --topics N: publishers spread their messages over topic(0..N-1) */
    uint64_t count;       /* -n: retained mode, messages to store (100000) */
    const char *json;     /* NULL, "-" (stdout) or a file */
    const char *plot;     /* SVG file or NULL */
    int threads;
    int src_addrs;        /* source addresses 127.0.0.1..N; 0 = automatic */
    uint32_t max_pending; /* concurrent TCP/MQTT handshakes per thread */
    const char *id_prefix;
    bool quiet;
    bool open_loop;       /* max rate without the end-to-end window */
    uint32_t session_expiry; /* 0: clean sessions; else persistent ones (3.x: clean session 0) */
    uint32_t nonce;       /* run nonce in every payload */
    bool ws;              /* --ws: MQTT over WebSockets (ws.c) */
    /* --tls: every connection over TLS (tls.c), context built by the shared src/tls library */
    bool tls;
    bool tls_resume;      /* --tls-resume: each client offers its previous session (storm) */
    bool tls_insecure;
    const char *cafile, *capath, *certfile, *keyfile, *tls_version, *ciphers;
} bench_cfg_t;

/* Latency histogram: log-linear buckets (HdrHistogram-like), 64 sub-buckets per power of two,
 * so any recorded value is known within 1/64 (1.6 %). Values are nanoseconds. */
#define HIST_SUB_BITS 6
#define HIST_BUCKETS ((64 - HIST_SUB_BITS) * (1 << HIST_SUB_BITS) + (2 << HIST_SUB_BITS))
typedef struct hist {
    uint64_t count;
    uint64_t min, max;
    double sum;
    uint64_t b[HIST_BUCKETS];
} hist_t;

void hist_init(hist_t *h);
void hist_record(hist_t *h, uint64_t v);
void hist_merge(hist_t *into, const hist_t *from);
/* Value at percentile q (0..100): the highest value of the bucket holding it, clamped to max. */
uint64_t hist_percentile(const hist_t *h, double q);
/* Bucket helpers for plotting. */
uint64_t hist_bucket_high(int idx);

/* Exact receive tracking of one publisher's sequence numbers at one subscriber: a growable
 * bitmap of the sequence numbers seen, so duplicates and late (out-of-order) arrivals are told
 * apart exactly. Memory: one bit per message that publisher sent. */
typedef struct track {
    uint64_t *bits;
    uint64_t words;
    uint64_t next;      /* highest sequence seen + 1 */
    uint64_t distinct;  /* distinct sequences seen */
} track_t;

/* Returns 0 new in order, 1 new but out of order (below `next`), 2 duplicate; -1 on OOM. */
int track_seen(track_t *t, uint64_t seq);
void track_free(track_t *t);

typedef struct pub_state {
    uint32_t pub_id;
    uint8_t *tmpl;        /* the encoded PUBLISH (shared codec), patched per message */
    uint32_t tmpl_len, id_off, pl_off;
    uint64_t seq;         /* messages generated = next sequence number */
    uint64_t done;        /* QoS 1/2 flows completed (PUBACK / PUBCOMP) */
    uint32_t inflight, window;
    uint16_t next_id;
    /* End-to-end window (max rate with subscribers): deliveries of this publisher's messages,
     * added by the subscribers' threads; the publisher stays within `window` messages of them. */
    _Atomic uint64_t delivered;
    _Atomic int blocked;          /* set by the publisher when it waits on `delivered` */
    struct bench_thread *owner;   /* woken through its eventfd when `delivered` moves */
    uint64_t e2e_base, blocked_since;
    uint64_t *ids;        /* QoS>0: bitmap of packet ids in flight (65536 bits) */
    uint64_t *rel;        /* QoS 2: ids whose PUBREC came (PUBREL sent) */
    char *topic;
    uint32_t topic_off, topic_digits; /* --topics: where the index digits sit in tmpl */
} pub_state_t;

typedef struct sub_state {
    char *filter;
    uint32_t expect_one;  /* UINT32_MAX: every publisher of the run; else this pub_id only */
    track_t *tr;          /* indexed by pub_id, grown on demand */
    uint32_t ntr;
    uint64_t *rel_ids;    /* QoS 2: ids received, PUBREC sent, PUBREL awaited (65536 bits) */
} sub_state_t;

/* CS_CLOSING: storm mode sent DISCONNECT and waits for the broker to close first (so the
 * TIME_WAIT is the broker's and the bench's ephemeral ports stay free). CS_WAIT: retained mode's
 * subscriber, connected, subscribes once every retained message is stored. */
enum conn_state { CS_IDLE, CS_CONNECTING, CS_CONNACK, CS_SUBACK, CS_READY, CS_CLOSED, CS_CLOSING, CS_WAIT };
enum conn_role { ROLE_IDLE, ROLE_PUB, ROLE_SUB };

struct bench_thread;

/* One MQTT connection. Ownership: belongs to exactly one bench_thread for life; only that
 * thread touches it while the engine runs. Buffers are allocated lazily so idle clients cost
 * little. */
typedef struct conn {
    int fd;
    uint32_t idx;          /* global client index */
    uint8_t role, state;
    bool epollout, dirty;
    uint8_t *in;           /* partial packet carried between reads */
    uint32_t in_len, in_cap;
    uint64_t started_ns;   /* when the TCP connect began (storm: handshake latency) */
    uint8_t *out;          /* pending output */
    uint32_t out_len, out_off, out_cap;
    uint64_t last_tx_ns;
    struct conn *next_dirty;
    struct ssl_st *ssl;    /* --tls: this connection's, NULL before the TCP connect and after close */
    struct ssl_session_st *session; /* --tls-resume: the last connection's session, offered next */
    bool tls_done;         /* handshake finished */
    pub_state_t *pub;
    sub_state_t *sub;
    /* --ws (ws.c): out[0..ws_framed) is in frames (or is the opening request); the frames coming
     * in (allocated at the first read, freed with the connection) */
    uint32_t ws_framed;
    bool ws_open; /* 101 received */
    struct ws_reader *ws_rd;
    char ws_key[25];
} conn_t;

/* ---- WebSockets (ws.c, --ws) ---- */
/* Put the opening request (a fresh key) in c's empty output buffer. -1 on OOM. */
int ws_client_request(conn_t *c, const char *host, int port);
/* The broker's answer in p[0..n): 1 when it is a complete, valid 101 (its length in *used), 0 when
 * more is needed, -1 when refused or wrong. */
int ws_client_response(conn_t *c, const uint8_t *p, size_t n, size_t *used);
/* Wrap the output bytes queued since the last call in one masked binary frame. -1 on OOM. */
int ws_client_frame(conn_t *c);
/* recv() for a WebSocket connection: the MQTT bytes of the server's frames; 0 at EOF or a close
 * frame; -1 with errno (EPROTO: a bad frame). */
ssize_t ws_client_recv(conn_t *c, uint8_t *buf, size_t len);

/* Counters one thread publishes for the live line; written with relaxed stores once per loop
 * turn, read by the main thread. */
typedef struct live_counters {
    _Atomic uint64_t sent, recv, distinct, done, inflight, errors, conns, subs_ready, handshakes, cycles;
    _Atomic int drain_seen; /* a turn ran in PH_DRAIN and its counters are stored */
} live_counters_t;

/* Final per-thread totals (read after join). */
typedef struct thr_totals {
    uint64_t sent, recv, distinct, dup, ooo, foreign, done, errors;
    uint64_t gaps;                  /* sequence numbers skipped, per publisher seen */
    uint64_t stalls;                /* end-to-end window given up after 1 s without progress */
    uint64_t meas_sent, meas_recv;  /* within the measurement window (by send timestamp) */
    uint64_t cycles, meas_cycles;   /* storm: CONNACKs received in the run / in the window */
    uint64_t tls_full, tls_resumed; /* --tls: handshakes done in full / resuming a session */
    hist_t lat;                     /* end-to-end latency of measured messages */
} thr_totals_t;

typedef struct bench_thread {
    int id;
    pthread_t tid;
    int ep;
    int efd;              /* eventfd: another thread's subscriber unblocked one of our publishers */
    uint64_t wake_mask;   /* threads to wake at the end of this turn */
    struct bench_run *run;
    conn_t *conns;        /* this thread's connections */
    uint32_t nconns;
    uint32_t next_start;  /* next connection to start */
    uint32_t pending;     /* handshakes under way */
    conn_t **pubs;        /* this thread's publishers */
    uint32_t npubs;
    uint64_t last_ka_ns;
    conn_t *dirty;
    uint8_t *rbuf;
    thr_totals_t t;
    live_counters_t live;
    uint64_t conns_up, subs_ready, handshakes_done;
    uint64_t inflight;
    bool kicked;          /* storm: cycling started; retained: subscriptions sent */
} bench_thread_t;

/* A per-second sample for the live line and the plot. */
typedef struct bench_sample {
    double t;             /* seconds since the run phase began */
    double sent_rate, recv_rate;
    uint64_t conns, errors;
} bench_sample_t;

typedef struct bench_run {
    bench_cfg_t cfg;
    _Atomic int phase;
    uint64_t t_run_ns;        /* when publishing began */
    _Atomic uint64_t meas_start_ns, meas_end_ns; /* measurement window (send timestamps) */
    uint32_t nclients;        /* total connections */
    bench_thread_t *thr;
    struct ssl_ctx_st *tls_ctx;  /* --tls: shared by every connection (OpenSSL locks it itself) */
    struct sockaddr_storage *dst;
    pub_state_t **pub_by_id;  /* publishers by pub_id (end-to-end window) */
    uint32_t fan;             /* deliveries per published message (pairs 1, fan-in/out S) */
    bool e2e;                 /* end-to-end window active */
    _Atomic int retained_go;  /* retained: every message stored, the subscriber may subscribe */
    _Atomic uint64_t sub_ns;  /* retained: when the SUBSCRIBE went out */
    unsigned dst_len;
    struct sockaddr_storage *dst_sub; /* --sub-port: nsub_ports addresses, or NULL */
    unsigned dst_sub_len[BENCH_MAX_SUB_PORTS];
    /* results */
    double connect_secs;
    uint64_t expected;        /* deliveries the subscribers should have seen */
    uint64_t sent_total;
    thr_totals_t tot;
    double drain_secs;
    double meas_secs;
    struct rusage ru_meas0, ru_meas1, ru_end;
    double load_secs;         /* retained: publishing and storing every message */
    double retained_secs;     /* retained: SUBSCRIBE to the last message received (0: not all came) */
    bench_sample_t *samples;
    uint32_t nsamples, samples_cap;
    uint64_t conns_peak;
    long rss_kb;
} bench_run_t;

/* main.c: set by SIGINT / SIGTERM; the run then ends its window early and drains. */
extern volatile sig_atomic_t bench_interrupted;

/* scenarios.c: resolve publisher/subscriber counts for the mode (0, or -1 with a message). */
int scenario_setup(bench_run_t *r);
/* Give client `idx` its role, topic / filter and expectations. 0 or -1 (out of memory). */
int scenario_client(bench_run_t *r, uint32_t idx, conn_t *c);
void scenario_client_free(conn_t *c);
const char *mode_name(enum bench_mode m);
int mode_parse(const char *s, enum bench_mode *m);
/* Deliveries the subscribers should see when the publishers sent `sent_total` messages;
 * false when the mode cannot know (sub alone, pub alone, conn). */
bool scenario_expected(const bench_run_t *r, uint64_t sent_total, uint64_t *expected);
/* QoS of the publishers' flows: -q, except retained mode's load (QoS 1: acknowledged = stored). */
int scenario_pub_qos(const bench_cfg_t *c);
/* Messages publisher p sends in all (retained: its share of -n); UINT64_MAX = no limit. */
uint64_t scenario_pub_share(const bench_run_t *r, const pub_state_t *p);
/* --topics / retained: digits of the zero-padded topic index (0: one topic per publisher), and
 * the topic index of publisher p's message `seq`. */
uint32_t scenario_topic_digits(const bench_cfg_t *c);
uint64_t scenario_topic_of(const bench_run_t *r, const pub_state_t *p, uint64_t seq);

/* tls.c: the bench's TLS layer (--tls). bench_tls_init builds the context (0, or -1 with a
 * message); tls_attach makes c->ssl on a connected socket; tls_send/tls_recv behave as
 * send/recv on a non-blocking socket (-1 with errno EAGAIN while the handshake or a record waits,
 * 0 at EOF) and run the handshake first, counting it in t; tls_close frees c->ssl (keeping the
 * session with --tls-resume). tls_want_read: the handshake waits for input, not for POLLOUT.
 * tls_pending: OpenSSL holds bytes it read ahead, which no epoll event will announce. */
int bench_tls_init(bench_run_t *r);
void bench_tls_free(bench_run_t *r);
int tls_attach(bench_thread_t *t, conn_t *c);
ssize_t tls_send(bench_thread_t *t, conn_t *c, const uint8_t *buf, size_t len);
ssize_t tls_recv(bench_thread_t *t, conn_t *c, uint8_t *buf, size_t len);
bool tls_want_read(const conn_t *c);
bool tls_pending(const conn_t *c);
void tls_close(bench_thread_t *t, conn_t *c);

/* engine.c */
int engine_init(bench_run_t *r);
void engine_free(bench_run_t *r);
/* One engine thread's loop (arg: its bench_thread_t); returns when the phase is PH_STOP. */
void *engine_thread(void *arg);

/* run.c: run every phase (connect, run, drain, stop) and fill the results. 0 or -1. */
int engine_run(bench_run_t *r);

/* Figures derived from a finished run, shared by the text and JSON reports. */
typedef struct bench_result {
    uint64_t sent, recv, distinct, dup, ooo, foreign, lost, done, errors, stalls, cycles;
    bool expected_known;
    uint64_t expected;
    double meas_secs, sent_rate, recv_rate, cycle_rate;
    double p50, p90, p99, p999, max, mean, min; /* microseconds */
    uint64_t lat_count;
    double cpu_meas, cpu_pct, cpu_us_per_msg, cpu_total;
    long maxrss_kb;
} bench_result_t;

/* report.c */
void report_compute(const bench_run_t *r, bench_result_t *o);
void report_live(const bench_run_t *r, const bench_sample_t *s, int phase);
void report_summary(const bench_run_t *r);
int report_json(const bench_run_t *r, const char *path);

/* plot.c */
int plot_svg(const bench_run_t *r, const char *path);

#endif
