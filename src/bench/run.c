/* run.c -- the main thread of tombo-bench: starts the engine threads and moves the run through
 * its phases (connect: every client connected and subscribed; run: publish, measure after the
 * warm-up; drain: no new messages, wait for the last deliveries and acks; stop), sampling the
 * threads' counters once a second for the live line and the plot, then adds up the totals. */
#include "bench/bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct totals {
    uint64_t sent, recv, distinct, done, inflight, errors, conns, subs_ready, handshakes, cycles;
} totals_t;

static void sum_live(const bench_run_t *r, totals_t *s)
{
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < r->cfg.threads; i++) {
        const live_counters_t *l = &r->thr[i].live;
        s->sent += atomic_load_explicit(&l->sent, memory_order_relaxed);
        s->recv += atomic_load_explicit(&l->recv, memory_order_relaxed);
        s->distinct += atomic_load_explicit(&l->distinct, memory_order_relaxed);
        s->done += atomic_load_explicit(&l->done, memory_order_relaxed);
        s->inflight += atomic_load_explicit(&l->inflight, memory_order_relaxed);
        s->errors += atomic_load_explicit(&l->errors, memory_order_relaxed);
        s->conns += atomic_load_explicit(&l->conns, memory_order_relaxed);
        s->subs_ready += atomic_load_explicit(&l->subs_ready, memory_order_relaxed);
        s->handshakes += atomic_load_explicit(&l->handshakes, memory_order_relaxed);
        s->cycles += atomic_load_explicit(&l->cycles, memory_order_relaxed);
    }
}

static bool all_drain_seen(const bench_run_t *r)
{
    for (int i = 0; i < r->cfg.threads; i++)
        if (!atomic_load_explicit(&r->thr[i].live.drain_seen, memory_order_acquire))
            return false;
    return true;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct sampler {
    uint64_t t0, last_ns;
    totals_t last;
} sampler_t;

/* Once a second: record a sample and print the live line. */
static void sample_tick(bench_run_t *r, sampler_t *sm, int phase, bool force)
{
    uint64_t now = now_ns();
    if (!force && now - sm->last_ns < 1000000000ull)
        return;
    totals_t cur;
    sum_live(r, &cur);
    double dt = (double)(now - sm->last_ns) / 1e9;
    if (dt <= 0)
        return;
    if (r->nsamples == r->samples_cap) {
        uint32_t cap = r->samples_cap ? r->samples_cap * 2 : 64;
        bench_sample_t *ns = realloc(r->samples, cap * sizeof(*ns));
        if (!ns)
            return;
        r->samples = ns;
        r->samples_cap = cap;
    }
    bench_sample_t *s = &r->samples[r->nsamples++];
    s->t = (double)(now - sm->t0) / 1e9;
    s->sent_rate = (double)(cur.sent - sm->last.sent) / dt;
    if (r->cfg.mode == MODE_STORM) /* the plot's "received" line: handshakes per second */
        s->recv_rate = (double)(cur.cycles - sm->last.cycles) / dt;
    else
        s->recv_rate = (double)(cur.recv - sm->last.recv) / dt;
    s->conns = cur.conns;
    s->errors = cur.errors;
    if (cur.conns > r->conns_peak)
        r->conns_peak = cur.conns;
    report_live(r, s, phase);
    sm->last = cur;
    sm->last_ns = now;
}

/* The run phase of every other mode: warm-up, then the measured window of -d seconds. */
static void run_timed(bench_run_t *r, sampler_t *sm)
{
    const bench_cfg_t *cfg = &r->cfg;
    uint64_t now = r->t_run_ns;
    uint64_t m0 = now + (uint64_t)(cfg->warmup * 1e9);
    uint64_t m1 = m0 + (uint64_t)(cfg->duration * 1e9);
    atomic_store(&r->meas_end_ns, m1);
    atomic_store(&r->meas_start_ns, m0 ? m0 : 1);
    atomic_store_explicit(&r->phase, PH_RUN, memory_order_release);
    bool got0 = false;
    while (!bench_interrupted) {
        now = now_ns();
        if (!got0 && now >= m0) {
            getrusage(RUSAGE_SELF, &r->ru_meas0);
            got0 = true;
        }
        if (now >= m1)
            break;
        sample_tick(r, sm, PH_RUN, false);
        uint64_t wait = (got0 ? m1 : m0) - now;
        sleep_ms(wait > 20000000 ? 20 : (int)(wait / 1000000) + 1);
    }
    if (!got0)
        getrusage(RUSAGE_SELF, &r->ru_meas0);
    getrusage(RUSAGE_SELF, &r->ru_meas1);
    now = now_ns();
    if (now < m1) { /* interrupted: the window ends now */
        atomic_store(&r->meas_end_ns, now);
        m1 = now;
    }
    r->meas_secs = m1 > m0 ? (double)(m1 - m0) / 1e9 : 0;
}

/* Retained mode's run phase: the publishers store every message (QoS 1, so each PUBACK means
 * stored), then the subscribers subscribe and the run waits for every message to arrive. Each
 * of the two steps may take up to 60 s + -d; the second ends after 3 s without an arrival. */
static void run_retained(bench_run_t *r, sampler_t *sm)
{
    const bench_cfg_t *cfg = &r->cfg;
    totals_t cur;
    uint64_t limit = (uint64_t)((60 + cfg->duration) * 1e9);
    uint64_t t0 = now_ns(), now = t0;
    atomic_store(&r->meas_end_ns, UINT64_MAX);
    atomic_store(&r->meas_start_ns, UINT64_MAX); /* nothing is measured while storing */
    atomic_store_explicit(&r->phase, PH_RUN, memory_order_release);
    for (;;) {
        sum_live(r, &cur);
        now = now_ns();
        if (cur.done >= cfg->count || bench_interrupted || now - t0 > limit)
            break;
        sample_tick(r, sm, PH_RUN, false);
        sleep_ms(2);
    }
    r->load_secs = (double)(now - t0) / 1e9;
    if (cur.done < cfg->count) {
        fprintf(stderr, "tombo-bench: %lu of %lu retained messages acknowledged after %.1f s\n",
                (unsigned long)cur.done, (unsigned long)cfg->count, r->load_secs);
        getrusage(RUSAGE_SELF, &r->ru_meas0);
        r->ru_meas1 = r->ru_meas0;
        return;
    }
    uint64_t expected = cfg->count * cfg->subs;
    getrusage(RUSAGE_SELF, &r->ru_meas0); /* the bench's CPU: receiving, as for the broker */
    atomic_store(&r->meas_start_ns, 1);   /* every arrival from now on is measured */
    atomic_store(&r->retained_go, 1);
    t0 = now_ns();
    uint64_t seen = 0, moved = t0;
    for (;;) {
        sum_live(r, &cur);
        now = now_ns();
        if (cur.distinct != seen)
            seen = cur.distinct, moved = now;
        /* a broker that drops some never sends them: 3 s without an arrival ends the wait */
        if (cur.distinct >= expected || bench_interrupted || now - t0 > limit || now - moved > 3000000000ull)
            break;
        sample_tick(r, sm, PH_RUN, false);
        sleep_ms(1);
    }
    getrusage(RUSAGE_SELF, &r->ru_meas1);
    r->meas_secs = (double)(now - t0) / 1e9;
}

int engine_run(bench_run_t *r)
{
    const bench_cfg_t *cfg = &r->cfg;
    sampler_t sm;
    memset(&sm, 0, sizeof(sm));
    sm.t0 = sm.last_ns = now_ns();
    atomic_store(&r->phase, PH_CONNECT);
    int started = 0;
    for (int i = 0; i < cfg->threads; i++) {
        if (pthread_create(&r->thr[i].tid, NULL, engine_thread, &r->thr[i]) != 0) {
            fprintf(stderr, "tombo-bench: cannot start threads\n");
            atomic_store(&r->phase, PH_STOP);
            break;
        }
        started++;
    }
    totals_t cur;
    uint64_t deadline = sm.t0 + (uint64_t)(cfg->connect_timeout * 1e9);
    while (started == cfg->threads) {
        sum_live(r, &cur);
        if (cur.handshakes >= r->nclients &&
            (cfg->mode == MODE_RETAINED || cur.subs_ready + cur.errors >= cfg->subs))
            break;
        if (now_ns() > deadline || bench_interrupted) {
            fprintf(stderr, "tombo-bench: %s; %lu of %u clients connected\n",
                    bench_interrupted ? "interrupted" : "connect timeout", (unsigned long)cur.conns, r->nclients);
            break;
        }
        sample_tick(r, &sm, PH_CONNECT, false);
        sleep_ms(5);
    }
    uint64_t now = now_ns();
    r->connect_secs = (double)(now - sm.t0) / 1e9;
    for (uint64_t end = now + (uint64_t)(cfg->settle * 1e9); now_ns() < end && !bench_interrupted;) {
        sample_tick(r, &sm, PH_CONNECT, false);
        sleep_ms(5);
    }
    now = now_ns();
    sum_live(r, &cur);
    if (cur.conns > r->conns_peak)
        r->conns_peak = cur.conns;

    /* run: publish; the measurement window starts after the warm-up */
    r->t_run_ns = now;
    if (!bench_interrupted && started == cfg->threads) {
        if (cfg->mode == MODE_RETAINED)
            run_retained(r, &sm);
        else
            run_timed(r, &sm);
    }

    /* drain: no new messages; wait for in-flight flows and deliveries */
    uint64_t d0 = now_ns();
    atomic_store_explicit(&r->phase, PH_DRAIN, memory_order_release);
    uint64_t dl = d0 + (uint64_t)(cfg->drain * 1e9);
    while (started == cfg->threads) {
        now = now_ns();
        if (now > dl)
            break;
        if (all_drain_seen(r)) {
            sum_live(r, &cur);
            uint64_t expected;
            bool known = scenario_expected(r, cur.sent, &expected);
            bool quiet = cur.inflight == 0 && (known ? cur.distinct >= expected : now - d0 > 200000000ull);
            if (quiet)
                break;
        }
        sample_tick(r, &sm, PH_DRAIN, false);
        sleep_ms(2);
    }
    r->drain_secs = (double)(now_ns() - d0) / 1e9;
    atomic_store_explicit(&r->phase, PH_STOP, memory_order_release);
    for (int i = 0; i < started; i++)
        pthread_join(r->thr[i].tid, NULL);
    getrusage(RUSAGE_SELF, &r->ru_end);

    /* totals */
    thr_totals_t *T = &r->tot;
    memset(T, 0, sizeof(*T));
    hist_init(&T->lat);
    for (int i = 0; i < cfg->threads; i++) {
        const thr_totals_t *x = &r->thr[i].t;
        T->sent += x->sent, T->recv += x->recv, T->distinct += x->distinct, T->dup += x->dup;
        T->ooo += x->ooo, T->foreign += x->foreign, T->done += x->done, T->errors += x->errors;
        T->gaps += x->gaps, T->stalls += x->stalls, T->meas_sent += x->meas_sent, T->meas_recv += x->meas_recv;
        T->cycles += x->cycles, T->meas_cycles += x->meas_cycles;
        T->tls_full += x->tls_full, T->tls_resumed += x->tls_resumed;
        hist_merge(&T->lat, &x->lat);
    }
    r->sent_total = T->sent;
    if (cfg->mode == MODE_RETAINED && T->lat.count && T->distinct >= cfg->count * cfg->subs)
        r->retained_secs = (double)T->lat.max / 1e9; /* the last arrival, from the SUBSCRIBE */
    scenario_expected(r, T->sent, &r->expected);
    return started == cfg->threads ? 0 : -1;
}
