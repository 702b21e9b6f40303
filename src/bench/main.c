/* main.c -- tombo-bench command line: parse options into a bench_cfg_t, set up the scenario,
 * run the engine and print the reports. */
#include "bench/bench.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile sig_atomic_t bench_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    bench_interrupted = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tombo-bench MODE [options]\n"
            "modes:\n"
            "  conn     hold -c connections (idle clients)\n"
            "  pub      -c publishers, publisher i to topic(i)\n"
            "  sub      -c subscribers, subscriber i on topic(i) (or -F)\n"
            "  pairs    -c publishers and -c subscribers, subscriber i hears publisher i\n"
            "  fanin    -c publishers to topic(i), -S subscribers (1) on topic(+)\n"
            "  fanout   -P publishers (1), -c subscribers on the same topic\n"
            "  retained -c publishers (10) store -n retained messages (QoS 1) on topic(0..n-1),\n"
            "           then -S subscribers (1) subscribe to # (or -F): time until all arrived\n"
            "  storm    -c clients connect, get CONNACK, DISCONNECT, connect again: handshakes/s\n"
            "options:\n"
            "  -h HOST         broker host (127.0.0.1)\n"
            "  -p PORT         broker port (1883)\n"
            "  --sub-port P1[,P2...] subscribers connect to these ports instead, round-robin\n"
            "                  (other nodes of a cluster)\n"
            "  --settle SEC    wait this long after the subscriptions before publishing (0): a cluster's\n"
            "                  routes reach the publishers' node meanwhile\n"
            "  --ws            MQTT over WebSockets (the port of a `protocol websockets` listener):\n"
            "                  opening handshake, then masked binary frames, one per flush\n"
            "  -c N            clients (see modes; 10)\n"
            "  -P N, -S N      publishers, subscribers (override -c)\n"
            "  -q QOS          0, 1 or 2 (0)\n"
            "  -s BYTES        payload size, %d..%d (64)\n"
            "  -r RATE         messages per second per publisher, 0 = as fast as possible (0)\n"
            "  -w N            window per publisher (64): in-flight PUBLISH at QoS 1/2 and, at max rate\n"
            "                  with subscribers, messages not yet delivered end to end\n"
            "  --open-loop     max rate without the end-to-end window (flood; brokers may drop)\n"
            "  -d SECONDS      measured duration (10)\n"
            "  --warmup SEC    publish this long before measuring (1)\n"
            "  --drain SEC     wait at most this long for in-flight messages at the end (5)\n"
            "  -t TEMPLATE     topic template, %%i = publisher index (bench/%%i)\n"
            "  -F TEMPLATES    subscriber filter templates, %%i = subscriber index; a comma-separated\n"
            "                  list gives subscriber i the (i mod count)-th\n"
            "  --topics N      spread each publisher's messages over topic(0..N-1), zero-padded\n"
            "  -n N            retained: messages to store (100000)\n"
            "  -V 3|4|5        MQTT version: 3 = 3.1, 4 = 3.1.1, 5 = 5.0 (4)\n"
            "  -T N            threads (2)\n"
            "  --src N         source addresses 127.0.0.1..N for loopback (auto: 1 + clients/16000)\n"
            "  --pending N     handshakes in progress per thread (64)\n"
            "  --connect-timeout SEC  (60)\n"
            "  --id-prefix S   client id prefix (tb)\n"
            "  --session-expiry SEC  persistent sessions (the broker queues and, with persistence,\n"
            "                  stores their QoS 1/2 messages); 3.x: clean session 0 (0 = clean)\n"
            "  --tls           connect over TLS (as mosquitto_pub: verified against --cafile/--capath,\n"
            "                  else the system's CAs; the certificate must name -h)\n"
            "  --cafile F, --capath D, --cert F --key F, --insecure, --tls-version V, --ciphers L\n"
            "                  TLS settings, with mosquitto_pub's meaning (each implies --tls)\n"
            "  --tls-resume    each client resumes its previous TLS session (storm: resumed handshakes)\n"
            "  --json[=FILE]   machine-readable summary to stdout (or FILE) instead of text\n"
            "  --plot FILE.svg latency distribution and rates over time\n"
            "  --quiet         no live line\n"
            "  --help\n",
            BENCH_PAYLOAD_MIN, BENCH_PAYLOAD_MAX);
}

static int parse_num(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || v < lo || v > hi) {
        fprintf(stderr, "tombo-bench: bad value for %s: %s\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* --sub-port P1[,P2...]: subscribers spread round-robin over the ports (cluster nodes). */
static int parse_ports(const char *s, bench_cfg_t *c)
{
    char buf[256];
    if (strlen(s) >= sizeof(buf)) {
        fprintf(stderr, "tombo-bench: --sub-port: list too long\n");
        return -1;
    }
    strcpy(buf, s);
    c->nsub_ports = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        double v;
        if (c->nsub_ports == BENCH_MAX_SUB_PORTS) {
            fprintf(stderr, "tombo-bench: --sub-port: at most %d ports\n", BENCH_MAX_SUB_PORTS);
            return -1;
        }
        if (parse_num("--sub-port", tok, 1, 65535, &v))
            return -1;
        c->sub_ports[c->nsub_ports++] = (int)v;
    }
    if (!c->nsub_ports) {
        fprintf(stderr, "tombo-bench: --sub-port: no port\n");
        return -1;
    }
    return 0;
}

enum { O_WARMUP = 256, O_DRAIN, O_JSON, O_PLOT, O_SRC, O_PENDING, O_CTIMEOUT, O_IDPREFIX, O_QUIET, O_HELP, O_OPEN,
       O_EXPIRY, O_TOPICS, O_TLS, O_TLS_RESUME, O_CAFILE, O_CAPATH, O_CERT, O_KEY, O_INSECURE, O_TLS_VERSION,
       O_CIPHERS, O_WS, O_SUB_PORT, O_SETTLE };

static int parse_args(int argc, char **argv, bench_cfg_t *c)
{
    static const struct option longopts[] = {
        {"warmup", required_argument, NULL, O_WARMUP},
        {"drain", required_argument, NULL, O_DRAIN},
        {"json", optional_argument, NULL, O_JSON},
        {"plot", required_argument, NULL, O_PLOT},
        {"src", required_argument, NULL, O_SRC},
        {"pending", required_argument, NULL, O_PENDING},
        {"connect-timeout", required_argument, NULL, O_CTIMEOUT},
        {"id-prefix", required_argument, NULL, O_IDPREFIX},
        {"quiet", no_argument, NULL, O_QUIET},
        {"open-loop", no_argument, NULL, O_OPEN},
        {"session-expiry", required_argument, NULL, O_EXPIRY},
        {"topics", required_argument, NULL, O_TOPICS},
        {"ws", no_argument, NULL, O_WS},
        {"sub-port", required_argument, NULL, O_SUB_PORT},
        {"settle", required_argument, NULL, O_SETTLE},
        {"tls", no_argument, NULL, O_TLS},
        {"tls-resume", no_argument, NULL, O_TLS_RESUME},
        {"cafile", required_argument, NULL, O_CAFILE},
        {"capath", required_argument, NULL, O_CAPATH},
        {"cert", required_argument, NULL, O_CERT},
        {"key", required_argument, NULL, O_KEY},
        {"insecure", no_argument, NULL, O_INSECURE},
        {"tls-version", required_argument, NULL, O_TLS_VERSION},
        {"ciphers", required_argument, NULL, O_CIPHERS},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    memset(c, 0, sizeof(*c));
    c->host = "127.0.0.1";
    c->port = 1883;
    c->version = 4;
    c->payload = 64;
    c->window = 64;
    c->duration = 10;
    c->warmup = 1;
    c->drain = 5;
    c->connect_timeout = 60;
    c->topic = "bench/%i";
    c->threads = 2;
    c->max_pending = 64;
    c->id_prefix = "tb";
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && !strcmp(argv[1], "--help")) {
            usage(stdout);
            exit(0);
        }
        usage(stderr);
        return -1;
    }
    if (mode_parse(argv[1], &c->mode) < 0) {
        fprintf(stderr, "tombo-bench: unknown mode '%s'\n", argv[1]);
        usage(stderr);
        return -1;
    }
    optind = 2;
    int o;
    double v;
    while ((o = getopt_long(argc, argv, "h:p:c:P:S:q:s:r:w:d:t:F:V:T:n:", longopts, NULL)) != -1) {
        switch (o) {
        case 'h': c->host = optarg; break;
        case 'p': if (parse_num("-p", optarg, 1, 65535, &v)) return -1; c->port = (int)v; break;
        case 'c': if (parse_num("-c", optarg, 1, 1e7, &v)) return -1; c->clients = (uint32_t)v; break;
        case 'P': if (parse_num("-P", optarg, 1, 1e7, &v)) return -1; c->pubs = (uint32_t)v; break;
        case 'S': if (parse_num("-S", optarg, 1, 1e7, &v)) return -1; c->subs = (uint32_t)v; break;
        case 'q': if (parse_num("-q", optarg, 0, 2, &v)) return -1; c->qos = (int)v; break;
        case 's':
            if (parse_num("-s", optarg, BENCH_PAYLOAD_MIN, BENCH_PAYLOAD_MAX, &v)) return -1;
            c->payload = (uint32_t)v;
            break;
        case 'r': if (parse_num("-r", optarg, 0, 1e9, &v)) return -1; c->rate = v; break;
        case 'w': if (parse_num("-w", optarg, 1, 32768, &v)) return -1; c->window = (uint32_t)v; break;
        case 'd': if (parse_num("-d", optarg, 0.1, 1e6, &v)) return -1; c->duration = v; break;
        case 't': c->topic = optarg; break;
        case 'n': if (parse_num("-n", optarg, 1, 1e9, &v)) return -1; c->count = (uint64_t)v; break;
        case O_TOPICS: if (parse_num("--topics", optarg, 1, 1e9, &v)) return -1; c->topics = (uint32_t)v; break;
        case 'F': c->filter = optarg; break;
        case 'V':
            if (parse_num("-V", optarg, 3, 5, &v)) return -1;
            c->version = (int)v;
            break;
        case 'T': if (parse_num("-T", optarg, 1, 64, &v)) return -1; c->threads = (int)v; break;
        case O_WARMUP: if (parse_num("--warmup", optarg, 0, 1e6, &v)) return -1; c->warmup = v; break;
        case O_DRAIN: if (parse_num("--drain", optarg, 0, 1e6, &v)) return -1; c->drain = v; break;
        case O_JSON: c->json = optarg ? optarg : "-"; break;
        case O_PLOT: c->plot = optarg; break;
        case O_SRC: if (parse_num("--src", optarg, 1, 254, &v)) return -1; c->src_addrs = (int)v; break;
        case O_PENDING:
            if (parse_num("--pending", optarg, 1, 1e6, &v)) return -1;
            c->max_pending = (uint32_t)v;
            break;
        case O_CTIMEOUT:
            if (parse_num("--connect-timeout", optarg, 0.1, 1e6, &v)) return -1;
            c->connect_timeout = v;
            break;
        case O_IDPREFIX: c->id_prefix = optarg; break;
        case O_QUIET: c->quiet = true; break;
        case O_OPEN: c->open_loop = true; break;
        case O_WS: c->ws = true; break;
        case O_SETTLE: if (parse_num("--settle", optarg, 0, 3600, &v)) return -1; c->settle = v; break;
        case O_SUB_PORT:
            if (parse_ports(optarg, c) < 0) return -1;
            break;
        case O_EXPIRY:
            if (parse_num("--session-expiry", optarg, 0, 4294967295.0, &v)) return -1;
            c->session_expiry = (uint32_t)v;
            break;
        case O_TLS: c->tls = true; break;
        case O_TLS_RESUME: c->tls = c->tls_resume = true; break;
        case O_CAFILE: c->tls = true; c->cafile = optarg; break;
        case O_CAPATH: c->tls = true; c->capath = optarg; break;
        case O_CERT: c->tls = true; c->certfile = optarg; break;
        case O_KEY: c->tls = true; c->keyfile = optarg; break;
        case O_INSECURE: c->tls = true; c->tls_insecure = true; break;
        case O_TLS_VERSION: c->tls = true; c->tls_version = optarg; break;
        case O_CIPHERS: c->tls = true; c->ciphers = optarg; break;
        case O_HELP: usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tombo-bench: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!!c->certfile != !!c->keyfile) {
        fprintf(stderr, "tombo-bench: --cert and --key go together\n");
        return -1;
    }
    if (c->ws && c->tls) {
        fprintf(stderr, "tombo-bench: --ws over TLS (wss) is not supported yet: use --ws on a plain websockets "
                        "listener\n");
        return -1;
    }
    return 0;
}

/* Idle clients need one descriptor each: take the hard limit. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    static bench_run_t run;
    if (parse_args(argc, argv, &run.cfg) < 0)
        return 2;
    if (scenario_setup(&run) < 0)
        return 2;
    run.cfg.nonce = (uint32_t)getpid() * 2654435761u ^ (uint32_t)now_ns();
    raise_nofile();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (engine_init(&run) < 0) {
        fprintf(stderr, "tombo-bench: setup failed\n");
        engine_free(&run);
        return 1;
    }
    int rc = engine_run(&run) < 0 ? 1 : 0;
    if (!run.conns_peak) {
        fprintf(stderr, "tombo-bench: no client could connect to %s:%d\n", run.cfg.host, run.cfg.port);
        rc = 1;
    }
    if (run.cfg.json) {
        if (report_json(&run, run.cfg.json) < 0)
            rc = 1;
    } else {
        report_summary(&run);
    }
    if (run.cfg.plot && plot_svg(&run, run.cfg.plot) < 0)
        rc = 1;
    engine_free(&run);
    return rc;
}
