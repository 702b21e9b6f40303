/* plot.c -- --plot FILE.svg: a hand-written SVG (no dependencies) with two panels: the latency
 * distribution by percentile (HdrHistogram style: x is 1/(1-q) on a log scale, so the tail out to
 * 99.999 % is visible) and the sent/received rates over time, one point per second. */
#include "bench/bench.h"

#include <math.h>
#include <stdio.h>

#define W 900
#define PH 300 /* panel height */
#define ML 90  /* left margin */
#define MR 30
#define MT 50

/* A "nice" tick step (1, 2 or 5 x 10^n) giving about n ticks up to `hi`. */
static double nice_step(double hi, int n)
{
    if (hi <= 0)
        return 1;
    double raw = hi / n, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void axes(FILE *f, int top, const char *title, const char *xlabel, const char *ylabel)
{
    int pw = W - ML - MR;
    fprintf(f, "<text x='%d' y='%d' font-size='15' font-weight='bold'>%s</text>\n", ML, top - 12, title);
    fprintf(f, "<rect x='%d' y='%d' width='%d' height='%d' fill='none' stroke='#444'/>\n", ML, top, pw, PH);
    fprintf(f, "<text x='%d' y='%d' font-size='12' text-anchor='middle'>%s</text>\n", ML + pw / 2, top + PH + 36,
            xlabel);
    fprintf(f, "<text x='18' y='%d' font-size='12' text-anchor='middle' transform='rotate(-90 18 %d)'>%s</text>\n",
            top + PH / 2, top + PH / 2, ylabel);
}

static void yticks(FILE *f, int top, double ymax)
{
    double step = nice_step(ymax, 5);
    for (double v = 0; v <= ymax * 1.0001; v += step) {
        double y = top + PH - v / ymax * PH;
        fprintf(f, "<line x1='%d' x2='%d' y1='%.1f' y2='%.1f' stroke='#ddd'/>\n", ML, W - MR, y, y);
        fprintf(f, "<text x='%d' y='%.1f' font-size='11' text-anchor='end'>%g</text>\n", ML - 6, y + 4, v);
    }
}

static void latency_panel(FILE *f, const bench_run_t *r, int top)
{
    const hist_t *h = &r->tot.lat;
    axes(f, top, "End-to-end latency by percentile", "percentile", "latency (microseconds)");
    if (!h->count) {
        fprintf(f, "<text x='%d' y='%d' font-size='13'>no latency samples</text>\n", ML + 20, top + PH / 2);
        return;
    }
    int pw = W - ML - MR;
    const double kmax = 5; /* 99.999 % */
    double ymax = (double)h->max / 1e3 * 1.05;
    if (ymax <= 0)
        ymax = 1;
    yticks(f, top, ymax);
    static const char *const labels[] = {"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"};
    for (int k = 0; k <= 5; k++) {
        double x = ML + k / kmax * pw;
        fprintf(f, "<line x1='%.1f' x2='%.1f' y1='%d' y2='%d' stroke='#ddd'/>\n", x, x, top, top + PH);
        fprintf(f, "<text x='%.1f' y='%d' font-size='11' text-anchor='middle'>%s</text>\n", x, top + PH + 16,
                labels[k]);
    }
    fprintf(f, "<polyline fill='none' stroke='#1f77b4' stroke-width='2' points='");
    for (double k = 0; k <= kmax + 1e-9; k += 0.02) {
        double q = 100.0 * (1.0 - pow(10, -k));
        double v = (double)hist_percentile(h, q) / 1e3;
        fprintf(f, "%.1f,%.1f ", ML + k / kmax * pw, top + PH - v / ymax * PH);
    }
    fprintf(f, "'/>\n");
    fprintf(f,
            "<text x='%d' y='%d' font-size='12' fill='#1f77b4'>p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f us"
            " (%lu samples)</text>\n",
            ML + 10, top + 18, hist_percentile(h, 50) / 1e3, hist_percentile(h, 90) / 1e3,
            hist_percentile(h, 99) / 1e3, hist_percentile(h, 99.9) / 1e3, h->max / 1e3, (unsigned long)h->count);
}

static void rate_panel(FILE *f, const bench_run_t *r, int top)
{
    axes(f, top, "Rates over time (one point per second)", "seconds since start", "messages per second");
    if (!r->nsamples)
        return;
    int pw = W - ML - MR;
    double tmax = r->samples[r->nsamples - 1].t, ymax = 1;
    for (uint32_t i = 0; i < r->nsamples; i++) {
        if (r->samples[i].sent_rate > ymax)
            ymax = r->samples[i].sent_rate;
        if (r->samples[i].recv_rate > ymax)
            ymax = r->samples[i].recv_rate;
    }
    ymax *= 1.1;
    if (tmax <= 0)
        tmax = 1;
    yticks(f, top, ymax);
    double step = nice_step(tmax, 10);
    for (double t = 0; t <= tmax * 1.0001; t += step) {
        double x = ML + t / tmax * pw;
        fprintf(f, "<text x='%.1f' y='%d' font-size='11' text-anchor='middle'>%g</text>\n", x, top + PH + 16, t);
    }
    static const char *const colors[] = {"#d62728", "#2ca02c"};
    static const char *const names[] = {"sent/s", "received/s"};
    for (int s = 0; s < 2; s++) {
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='2' points='", colors[s]);
        for (uint32_t i = 0; i < r->nsamples; i++) {
            double v = s ? r->samples[i].recv_rate : r->samples[i].sent_rate;
            fprintf(f, "%.1f,%.1f ", ML + r->samples[i].t / tmax * pw, top + PH - v / ymax * PH);
        }
        fprintf(f, "'/>\n<text x='%d' y='%d' font-size='12' fill='%s'>%s</text>\n", ML + 10 + 110 * s, top + 18,
                colors[s], names[s]);
    }
}

int plot_svg(const bench_run_t *r, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    const bench_cfg_t *c = &r->cfg;
    int h = MT + 2 * PH + 130;
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' font-family='sans-serif'>\n", W, h);
    fprintf(f, "<rect width='100%%' height='100%%' fill='white'/>\n");
    fprintf(f,
            "<text x='%d' y='22' font-size='13'>tombo-bench %s: %u pub, %u sub, QoS %d, %u B, %s:%d</text>\n",
            ML, mode_name(c->mode), c->pubs, c->subs, c->qos, c->payload, c->host, c->port);
    latency_panel(f, r, MT + 10);
    rate_panel(f, r, MT + PH + 90);
    fprintf(f, "</svg>\n");
    return fclose(f) == 0 ? 0 : -1;
}
