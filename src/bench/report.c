/* report.c -- what tombo-bench prints: the live line on stderr once a second, the final
 * summary on stdout, and the same figures as JSON for scripts (bench/compare). */
#include "bench/bench.h"

#include <stdio.h>
#include <string.h>

static const char *const phase_names[] = {"connect", "run", "drain", "stop"};

static double tv_secs(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static double ru_cpu(const struct rusage *ru)
{
    return tv_secs(&ru->ru_utime) + tv_secs(&ru->ru_stime);
}

void report_live(const bench_run_t *r, const bench_sample_t *s, int phase)
{
    if (r->cfg.quiet)
        return;
    fprintf(stderr, "[%7.1fs] %-7s sent/s %10.0f  recv/s %10.0f  conns %6lu/%-6u errors %lu\n", s->t,
            phase_names[phase], s->sent_rate, s->recv_rate, (unsigned long)s->conns, r->nclients,
            (unsigned long)s->errors);
}

void report_compute(const bench_run_t *r, bench_result_t *o)
{
    const thr_totals_t *T = &r->tot;
    memset(o, 0, sizeof(*o));
    o->sent = T->sent, o->recv = T->recv, o->distinct = T->distinct, o->dup = T->dup;
    o->ooo = T->ooo, o->foreign = T->foreign, o->done = T->done, o->errors = T->errors;
    o->stalls = T->stalls;
    o->cycles = T->cycles;
    o->expected_known = scenario_expected(r, T->sent, &o->expected);
    if (o->expected_known)
        o->lost = o->expected > T->distinct ? o->expected - T->distinct : 0;
    else
        o->lost = T->gaps; /* sub alone: only gaps in each publisher's sequence are visible */
    o->meas_secs = r->meas_secs;
    if (r->meas_secs > 0) {
        o->sent_rate = (double)T->meas_sent / r->meas_secs;
        o->recv_rate = (double)T->meas_recv / r->meas_secs;
        o->cycle_rate = (double)T->meas_cycles / r->meas_secs;
    }
    if (r->cfg.mode == MODE_RETAINED && r->load_secs > 0) /* stored per second */
        o->sent_rate = (double)T->done / r->load_secs;
    o->lat_count = T->lat.count;
    if (T->lat.count) {
        o->p50 = (double)hist_percentile(&T->lat, 50) / 1e3;
        o->p90 = (double)hist_percentile(&T->lat, 90) / 1e3;
        o->p99 = (double)hist_percentile(&T->lat, 99) / 1e3;
        o->p999 = (double)hist_percentile(&T->lat, 99.9) / 1e3;
        o->max = (double)T->lat.max / 1e3;
        o->min = (double)T->lat.min / 1e3;
        o->mean = T->lat.sum / (double)T->lat.count / 1e3;
    }
    o->cpu_meas = ru_cpu(&r->ru_meas1) - ru_cpu(&r->ru_meas0);
    if (r->meas_secs > 0)
        o->cpu_pct = 100.0 * o->cpu_meas / r->meas_secs;
    uint64_t msgs = T->meas_sent + T->meas_recv + T->meas_cycles;
    if (msgs)
        o->cpu_us_per_msg = o->cpu_meas * 1e6 / (double)msgs;
    o->cpu_total = ru_cpu(&r->ru_end);
    o->maxrss_kb = r->ru_end.ru_maxrss;
}

void report_summary(const bench_run_t *r)
{
    const bench_cfg_t *c = &r->cfg;
    bench_result_t o;
    report_compute(r, &o);
    printf("tombo-bench %s: %s:%d MQTT %s, %u publisher(s), %u subscriber(s)", mode_name(c->mode), c->host,
           c->port, c->version == 5 ? "5.0" : c->version == 4 ? "3.1.1" : "3.1", c->pubs, c->subs);
    if (c->idle)
        printf(", %u idle client(s)", c->idle);
    printf("\n  QoS %d, payload %u B, rate %s", c->qos, c->payload, c->rate > 0 ? "" : "max");
    if (c->rate > 0)
        printf("%g msg/s per publisher", c->rate);
    if (c->qos)
        printf(", window %u", c->window);
    printf(", %g s measured after %g s warm-up, %d thread(s)\n", c->duration, c->warmup, c->threads);
    printf("connections  %lu of %u up after %.2f s (peak), source addresses %d, errors %lu\n",
           (unsigned long)r->conns_peak, r->nclients, r->connect_secs, c->src_addrs, (unsigned long)o.errors);
    if (c->tls)
        printf("tls          %lu full handshakes, %lu resumed (--tls-resume %s)\n", (unsigned long)r->tot.tls_full,
               (unsigned long)r->tot.tls_resumed, c->tls_resume ? "on" : "off");
    if (c->mode == MODE_STORM) {
        printf("storm        %lu handshakes (CONNECT to CONNACK, %s sessions), %.0f per second in the window\n",
               (unsigned long)o.cycles, c->session_expiry ? "persistent" : "clean", o.cycle_rate);
        if (o.lat_count)
            printf("handshake us p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (mean %.1f, %lu samples)\n", o.p50,
                   o.p90, o.p99, o.p999, o.max, o.mean, (unsigned long)o.lat_count);
    }
    if (c->mode == MODE_RETAINED) {
        printf("retained     %lu of %lu stored (acknowledged) in %.2f s; ", (unsigned long)o.done,
               (unsigned long)c->count, r->load_secs);
        if (r->retained_secs > 0)
            printf("all received %.3f s after subscribing (%.0f msg/s)\n", r->retained_secs,
                   (double)o.expected / r->retained_secs);
        else
            printf("not all received within the time limit\n");
    }
    if (c->mode != MODE_CONN && c->mode != MODE_STORM) {
        printf("throughput   sent %.0f msg/s, received %.0f msg/s (measured window %.2f s)\n", o.sent_rate,
               o.recv_rate, o.meas_secs);
        printf("messages     sent %lu, received %lu", (unsigned long)o.sent, (unsigned long)o.recv);
        if (c->qos)
            printf(", flows completed %lu", (unsigned long)o.done);
        printf("\n");
        if (c->subs) {
            printf("delivery     ");
            if (o.expected_known)
                printf("expected %lu, ", (unsigned long)o.expected);
            printf("lost %lu%s, duplicated %lu, out of order %lu, foreign %lu (drain %.2f s)\n",
                   (unsigned long)o.lost, o.expected_known ? "" : " (sequence gaps)", (unsigned long)o.dup,
                   (unsigned long)o.ooo, (unsigned long)o.foreign, r->drain_secs);
        if (r->e2e)
            printf("flow control end-to-end window %u per publisher, %lu stall(s) of 1 s\n", c->window,
                   (unsigned long)o.stalls);
        }
        if (o.lat_count)
            printf("latency us   p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (mean %.1f, %lu samples)\n",
                   o.p50, o.p90, o.p99, o.p999, o.max, o.mean, (unsigned long)o.lat_count);
    }
    printf("bench CPU    %.2f s in the window = %.0f%% of one core, %.3f us per message handled; %.2f s total, "
           "max RSS %ld KB\n",
           o.cpu_meas, o.cpu_pct, o.cpu_us_per_msg, o.cpu_total, o.maxrss_kb);
}

/* Write s as a JSON string literal. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

int report_json(const bench_run_t *r, const char *path)
{
    const bench_cfg_t *c = &r->cfg;
    bench_result_t o;
    report_compute(r, &o);
    FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;
    if (!f) {
        perror(path);
        return -1;
    }
    fprintf(f, "{\n  \"mode\": \"%s\", \"host\": ", mode_name(c->mode));
    json_str(f, c->host);
    fprintf(f, ", \"port\": %d, \"version\": %d, \"topic\": ", c->port, c->version);
    json_str(f, c->topic);
    fprintf(f, ",\n");
    fprintf(f,
            "  \"clients\": %u, \"publishers\": %u, \"subscribers\": %u, \"idle\": %u, \"qos\": %d, "
            "\"payload\": %u, \"rate\": %g, \"window\": %u, \"duration\": %g, \"warmup\": %g, \"threads\": %d,\n",
            r->nclients, c->pubs, c->subs, c->idle, c->qos, c->payload, c->rate, c->window, c->duration, c->warmup,
            c->threads);
    fprintf(f, "  \"connections\": %lu, \"connect_secs\": %.3f, \"source_addresses\": %d, \"errors\": %lu,\n",
            (unsigned long)r->conns_peak, r->connect_secs, c->src_addrs, (unsigned long)o.errors);
    fprintf(f, "  \"open_loop\": %s, \"session_expiry\": %u, \"topics\": %u, \"count\": %lu,\n",
            c->open_loop ? "true" : "false", c->session_expiry, c->topics, (unsigned long)c->count);
    fprintf(f, "  \"tls\": %s, \"tls_resume\": %s, \"tls_full\": %lu, \"tls_resumed\": %lu,\n",
            c->tls ? "true" : "false", c->tls_resume ? "true" : "false", (unsigned long)r->tot.tls_full,
            (unsigned long)r->tot.tls_resumed);
    fprintf(f, "  \"sent\": %lu, \"received\": %lu, \"distinct\": %lu, \"completed\": %lu,\n", (unsigned long)o.sent,
            (unsigned long)o.recv, (unsigned long)o.distinct, (unsigned long)o.done);
    /* accepted: what the broker took; only QoS 1/2 acknowledgements say so, at QoS 0 it is what
     * the bench wrote to the socket */
    fprintf(f, "  \"accepted\": %lu, \"cycles\": %lu, \"cycle_rate\": %.1f, \"load_secs\": %.3f, \"retained_secs\": %.4f,\n",
            (unsigned long)(scenario_pub_qos(c) ? o.done : o.sent), (unsigned long)o.cycles, o.cycle_rate,
            r->load_secs, r->retained_secs);
    if (o.expected_known)
        fprintf(f, "  \"expected\": %lu,", (unsigned long)o.expected);
    else
        fprintf(f, "  \"expected\": null,");
    fprintf(f, " \"lost\": %lu, \"duplicated\": %lu, \"out_of_order\": %lu, \"foreign\": %lu, \"drain_secs\": %.3f,\n",
            (unsigned long)o.lost, (unsigned long)o.dup, (unsigned long)o.ooo, (unsigned long)o.foreign,
            r->drain_secs);
    fprintf(f, "  \"e2e_window\": %s, \"stalls\": %lu,\n", r->e2e ? "true" : "false", (unsigned long)o.stalls);
    fprintf(f, "  \"measured_secs\": %.3f, \"sent_rate\": %.1f, \"recv_rate\": %.1f,\n", o.meas_secs, o.sent_rate,
            o.recv_rate);
    fprintf(f,
            "  \"latency_us\": {\"count\": %lu, \"min\": %.1f, \"mean\": %.1f, \"p50\": %.1f, \"p90\": %.1f, "
            "\"p99\": %.1f, \"p99_9\": %.1f, \"max\": %.1f},\n",
            (unsigned long)o.lat_count, o.min, o.mean, o.p50, o.p90, o.p99, o.p999, o.max);
    fprintf(f,
            "  \"bench_cpu\": {\"window_secs\": %.3f, \"percent\": %.1f, \"us_per_msg\": %.4f, \"total_secs\": %.3f, "
            "\"maxrss_kb\": %ld},\n",
            o.cpu_meas, o.cpu_pct, o.cpu_us_per_msg, o.cpu_total, o.maxrss_kb);
    fprintf(f, "  \"samples\": [");
    for (uint32_t i = 0; i < r->nsamples; i++) {
        const bench_sample_t *s = &r->samples[i];
        fprintf(f, "%s\n    {\"t\": %.2f, \"sent_rate\": %.0f, \"recv_rate\": %.0f, \"conns\": %lu, \"errors\": %lu}",
                i ? "," : "", s->t, s->sent_rate, s->recv_rate, (unsigned long)s->conns, (unsigned long)s->errors);
    }
    fprintf(f, "\n  ]\n}\n");
    if (f != stdout)
        fclose(f);
    else
        fflush(f);
    return 0;
}
