/* main.c -- the tombo broker: command line, configuration, signals, run. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/log.h"
#include "broker/worker.h"

static broker_t *g_broker; /* only for the signal handler */

static atomic_int early_stop; /* SIGINT/SIGTERM before the workers existed (lock-free: signal-safe) */

static void on_signal(int sig)
{
    if (!g_broker) {
        if (sig != SIGHUP)
            atomic_store(&early_stop, 1);
        return;
    }
    if (sig == SIGHUP) {
        atomic_store(&g_broker->reload, 1);
        return;
    }
    atomic_store(&g_broker->stop, 1);
    /* Wake every worker now rather than at its next tick; write() is async-signal-safe. */
    for (int i = 0; i < g_broker->n_workers && g_broker->workers; i++)
        inbox_wake(&g_broker->workers[i].inbox);
}

/* Take as many file descriptors as we are allowed: each client is one. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* `user NAME`: started as root, become that user (and its groups) once everything that needs root
 * is open -- the listeners (ports below 1024), the log and pid files, the persistence database --
 * and before any client is served, as Mosquitto does. Not root: nothing to drop (Mosquitto too).
 * Returns -1 after logging when the user is unknown or the change fails: better not to start than
 * to serve as root what the config meant to run unprivileged. */
static int drop_privileges(const char *user)
{
    if (!user || geteuid() != 0)
        return 0;
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        log_printf(TLOG_ERR, "Error: Invalid user '%s'%s%s.", user, errno ? ": " : "", errno ? strerror(errno) : "");
        return -1;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        log_printf(TLOG_ERR, "Error: Unable to drop privileges to '%s': %s.", user, strerror(errno));
        return -1;
    }
    log_printf(TLOG_INFO, "Running as user %s (uid %u, gid %u).", user, (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
    return 0;
}

/* -d: the process the shell waits for stays until the broker has started, so a start-up error is
 * printed on the terminal and the exit status says whether it started (Mosquitto's parent returns at
 * once). The child, in a new session, says "started" through a pipe; then stdin, stdout and stderr
 * go to /dev/null. Called before any thread exists. Returns the write end of the pipe (child), or
 * does not return (parent). */
static int daemonise(void)
{
    int p[2];
    if (pipe(p) != 0) {
        fprintf(stderr, "tombo: -d: pipe: %s\n", strerror(errno));
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "tombo: -d: fork: %s\n", strerror(errno));
        exit(1);
    }
    if (pid > 0) {
        close(p[1]);
        char ok = 0;
        ssize_t n;
        while ((n = read(p[0], &ok, 1)) < 0 && errno == EINTR)
            ;
        _exit(n == 1 && ok == 'y' ? 0 : 1);
    }
    close(p[0]);
    setsid();
    return p[1];
}

/* The broker is up: let the waiting parent go, and leave the terminal. */
static void daemon_started(int fd)
{
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2); /* log_dest stderr/stdout lines go nowhere from now on, as with Mosquitto -d */
        if (null > 2)
            close(null);
    }
    (void)!write(fd, "y", 1);
    close(fd);
}

int main(int argc, char **argv)
{
    static broker_t b;
    char err[512];
    config_init(&b.cfg);
    int r = config_args(&b.cfg, argc, argv, err, sizeof(err));
    if (r != 0) {
        if (r < 0)
            fprintf(stderr, "tombo: %s\n", err);
        config_free(&b.cfg);
        return r < 0 ? 1 : 0;
    }
    if (!b.cfg.daemon)
        log_dlt_allow(); /* log_init registers with the DLT daemon (log_dest dlt); with -d, after the fork */
    if (log_init(&b.cfg) != 0) {
        log_dlt_stop();
        config_free(&b.cfg);
        return 1;
    }
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    int daemon_fd = b.cfg.daemon ? daemonise() : -1;
    if (b.cfg.daemon)
        log_dlt_start(&b.cfg); /* after the fork: libdlt's threads belong to the broker's process */

    int rc = 1;
    FILE *pf = NULL;
    if (b.cfg.pid_file && !(pf = fopen(b.cfg.pid_file, "w"))) {
        log_printf(TLOG_ERR, "Error: Unable to write pid file %s: %s.", b.cfg.pid_file, strerror(errno));
        log_dlt_stop();
        log_close();
        config_free(&b.cfg);
        return 1;
    }
    if (pf) {
        fprintf(pf, "%d\n", (int)getpid());
        fclose(pf);
    }
    /* Installed before the listeners open (broker_init), so a SIGTERM that comes as soon as the
     * port answers stops the broker cleanly rather than killing it; until the workers' eventfds
     * exist the handler only remembers it. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    /* The threads broker_init starts (nats.c's, the cluster's, libdlt's) inherit these signals
     * blocked, so the handler never runs on them, where the workers' inboxes were written without
     * any ordering to them (a data race TSan saw). A signal meanwhile waits and is taken below. */
    sigset_t stop_sigs, old_mask;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, &old_mask);
    int init_rc = broker_init(&b);
    if (init_rc == 0)
        g_broker = &b;
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    if (init_rc == 0 && drop_privileges(b.cfg.user) == 0) {
        if (daemon_fd >= 0)
            daemon_started(daemon_fd);
        if (atomic_load(&early_stop))
            atomic_store(&b.stop, 1);
        rc = broker_run(&b) == 0 ? 0 : 1;
    }
    broker_free(&b);
    if (b.cfg.pid_file)
        unlink(b.cfg.pid_file);
    log_dlt_stop();
    log_close();
    config_free(&b.cfg);
    return rc;
}
