/* tombo_passwd.c -- tombo-passwd, a drop-in for mosquitto_passwd: add, update and delete users of a
 * password file, or hash a plain-text one in place. Same options, messages and file format
 * (`user:$7$101$SALT$HASH`), so a file made by either tool works with tombo and with Mosquitto.
 *
 * The file is rewritten through a temporary file in the same directory and renamed over the old
 * one (keeping its mode and, when allowed, its owner), so a crash never leaves a half-written file.
 * New files are created 0600: the hashes are nobody else's business. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "pwhash/pwhash.h"

#define MAX_PASSWORD 65535
#define MAX_USERNAME 65535

static void usage(void)
{
    printf("tombo-passwd is a tool for managing password files for tombo and mosquitto.\n"
           "\n"
           "Usage: tombo-passwd [-H sha512 | -H sha512-pbkdf2] [-c | -D] passwordfile username\n"
           "       tombo-passwd [-H sha512 | -H sha512-pbkdf2] [-c] -b passwordfile username password\n"
           "       tombo-passwd -U passwordfile\n"
           " -b : run in batch mode to allow passing passwords on the command line.\n"
           " -c : create a new password file. This will overwrite existing files.\n"
           " -D : delete the username rather than adding/updating its password.\n"
           " -H : specify the hashing algorithm. Defaults to sha512-pbkdf2, which is recommended.\n"
           "      Mosquitto 1.6 and earlier defaulted to sha512.\n"
           "      -H scram-sha-256 stores a SCRAM-SHA-256 verifier (tombo only): the user can log in\n"
           "      with MQTT 5 enhanced authentication (SCRAM-SHA-256) and with a plain password.\n"
           " -U : update a plain text password file to use hashed passwords.\n"
           "      Lines that already hold a $6$, $7$ or $SCRAM-SHA-256$ hash are left as they are.\n"
           "\n"
           "The file format is mosquitto_passwd's: files work with both brokers\n"
           "(Mosquitto ignores scram-sha-256 entries: those users cannot log in there).\n");
}

/* The lines of a file, each without its newline. */
struct lines {
    char **v;
    size_t n;
};

static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int lines_push(struct lines *l, char *s)
{
    char **v = realloc(l->v, sizeof(char *) * (l->n + 1));
    if (!v) {
        free(s);
        return -1;
    }
    l->v = v;
    l->v[l->n++] = s;
    return 0;
}

static int read_lines(const char *path, struct lines *l, struct stat *st)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "Error: Unable to open password file %s. %s.\n", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), st) != 0) {
        fprintf(stderr, "Error: Unable to read password file %s. %s.\n", path, strerror(errno));
        fclose(f);
        return -1;
    }
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&buf, &cap, f)) >= 0) {
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = '\0';
        char *copy = strdup(buf);
        if (!copy || lines_push(l, copy) != 0) {
            fprintf(stderr, "Error: Out of memory.\n");
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "Error: Unable to read password file %s. %s.\n", path, strerror(errno));
        rc = -1;
    }
    free(buf);
    fclose(f);
    return rc;
}

/* Write the lines to path through a temporary file and rename(). st: the old file's, or NULL for a
 * new file (mode 0600). */
static int write_lines(const char *path, const struct lines *l, const struct stat *st)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        fprintf(stderr, "Error: Out of memory.\n");
        return -1;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "Error: Unable to write password file %s. %s.\n", path, strerror(errno));
        free(tmp);
        return -1;
    }
    if (st) {
        if (fchown(fd, st->st_uid, st->st_gid) != 0) {
            /* Not root: the file becomes ours, which it already had to be writable by. */
        }
        (void)fchmod(fd, st->st_mode & 07777);
    } else {
        (void)fchmod(fd, 0600);
    }
    FILE *f = fdopen(fd, "w");
    int rc = f ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < l->n; i++)
        if (fprintf(f, "%s\n", l->v[i]) < 0)
            rc = -1;
    if (f) {
        if (fflush(f) != 0 || fsync(fd) != 0)
            rc = -1;
        if (fclose(f) != 0)
            rc = -1;
    } else {
        close(fd);
    }
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    if (rc != 0) {
        fprintf(stderr, "Error: Unable to write password file %s. %s.\n", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

/* "user:HASH" for pw, newly allocated; NULL on failure (message printed). */
static char *make_line(const char *user, size_t ulen, const char *pw, int type)
{
    struct pwhash h;
    char text[PWHASH_TEXT_MAX];
    if (pwhash_make(&h, type, (const uint8_t *)pw, strlen(pw)) != 0 || pwhash_format(&h, text, sizeof(text)) < 0) {
        fprintf(stderr, "Error: Unable to hash password.\n");
        return NULL;
    }
    size_t n = ulen + 1 + strlen(text) + 1;
    char *line = malloc(n);
    if (!line) {
        fprintf(stderr, "Error: Out of memory.\n");
        return NULL;
    }
    snprintf(line, n, "%.*s:%s", (int)ulen, user, text);
    return line;
}

/* Read one line from stdin (echo off on a terminal) after printing prompt on stdout. Returns 0, or
 * -1 at end of input. */
static int read_password(const char *prompt, char *buf, size_t len)
{
    printf("%s", prompt);
    fflush(stdout);
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        quiet = old;
        quiet.c_lflag &= (tcflag_t)~ECHO;
        quiet.c_lflag |= ECHONL;
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    char *r = fgets(buf, (int)len, stdin);
    if (tty)
        tcsetattr(STDIN_FILENO, TCSANOW, &old);
    else
        printf("\n");
    if (!r)
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/* Prompt twice. Returns 0, or 1 with the message printed. */
static int get_password(char *pw, size_t len)
{
    char again[MAX_PASSWORD + 2];
    if (read_password("Password: ", pw, len) != 0 || !pw[0]) {
        fprintf(stderr, "Error: Empty password.\n");
        return 1;
    }
    if (read_password("Reenter password: ", again, sizeof(again)) != 0 || strcmp(pw, again) != 0) {
        fprintf(stderr, "Error: Passwords do not match.\n");
        return 1;
    }
    return 0;
}

static bool is_hashed(const char *h)
{
    return (h[0] == '$' && (h[1] == '6' || h[1] == '7') && h[2] == '$') ||
           !strncmp(h, PWHASH_SCRAM_PREFIX, strlen(PWHASH_SCRAM_PREFIX));
}

/* -U: hash every plain-text password of the file in place. */
static int update_file(const char *path, int type)
{
    struct lines l = {0};
    struct stat st;
    if (read_lines(path, &l, &st) != 0) {
        lines_free(&l);
        return 1;
    }
    for (size_t i = 0; i < l.n; i++) {
        char *s = l.v[i];
        if (!s[0] || s[0] == '#')
            continue;
        char *colon = strchr(s, ':');
        if (!colon || colon == s) {
            fprintf(stderr, "Error: Corrupt password file at line %zu.\n", i + 1);
            lines_free(&l);
            return 1;
        }
        if (is_hashed(colon + 1))
            continue;
        char *line = make_line(s, (size_t)(colon - s), colon + 1, type);
        if (!line) {
            lines_free(&l);
            return 1;
        }
        free(l.v[i]);
        l.v[i] = line;
    }
    int rc = write_lines(path, &l, &st) == 0 ? 0 : 1;
    lines_free(&l);
    return rc;
}

/* Add or update (pw != NULL) or delete (pw == NULL) user. create: start from an empty file. */
static int edit_file(const char *path, const char *user, const char *pw, int type, bool create)
{
    struct lines l = {0};
    struct stat st;
    bool have_st = false;
    if (!create) {
        if (read_lines(path, &l, &st) != 0) {
            lines_free(&l);
            return 1;
        }
        have_st = true;
    }
    size_t ulen = strlen(user);
    bool found = false;
    for (size_t i = 0; i < l.n; i++) {
        char *s = l.v[i];
        if (s[0] == '#' || strncmp(s, user, ulen) != 0 || s[ulen] != ':')
            continue;
        if (pw == NULL || found) {
            /* delete (every line of that user; a second one would never be used anyway) */
            free(l.v[i]);
            memmove(&l.v[i], &l.v[i + 1], sizeof(char *) * (l.n - i - 1));
            l.n--;
            i--;
        } else {
            char *line = make_line(user, ulen, pw, type);
            if (!line) {
                lines_free(&l);
                return 1;
            }
            free(l.v[i]);
            l.v[i] = line;
        }
        found = true;
    }
    if (pw == NULL && !found) {
        fprintf(stderr, "Warning: User %s not found in password file.\n", user);
        lines_free(&l);
        return 1;
    }
    if (pw != NULL && !found) {
        char *line = make_line(user, ulen, pw, type);
        if (!line || lines_push(&l, line) != 0) {
            lines_free(&l);
            return 1;
        }
    }
    int rc = write_lines(path, &l, have_st ? &st : NULL) == 0 ? 0 : 1;
    lines_free(&l);
    return rc;
}

int main(int argc, char **argv)
{
    bool create = false, del = false, batch = false, update = false;
    int type = PWHASH_SHA512_PBKDF2;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "-c")) {
            create = true;
        } else if (!strcmp(o, "-D")) {
            del = true;
        } else if (!strcmp(o, "-b")) {
            batch = true;
        } else if (!strcmp(o, "-U")) {
            update = true;
        } else if (!strcmp(o, "-H")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "Error: -H argument given but not enough arguments.\n");
                return 1;
            }
            const char *alg = argv[++i];
            if (!strcmp(alg, "sha512")) {
                type = PWHASH_SHA512;
            } else if (!strcmp(alg, "sha512-pbkdf2")) {
                type = PWHASH_SHA512_PBKDF2;
            } else if (!strcmp(alg, "scram-sha-256")) {
                type = PWHASH_SCRAM_SHA256;
            } else {
                fprintf(stderr, "Error: Unknown hash type '%s'\n", alg);
                return 1;
            }
        } else if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage();
            return 0;
        } else {
            usage();
            return 1;
        }
    }
    int nargs = argc - i;
    char **args = argv + i;

    if (create && del) {
        fprintf(stderr, "Error: -c and -D cannot be used together.\n");
        return 1;
    }
    if (update) {
        if (create || del || batch || nargs != 1) {
            if (nargs < 1)
                fprintf(stderr, "Error: -U argument given but password file missing.\n");
            else
                usage();
            return 1;
        }
        return update_file(args[0], type);
    }
    if (batch) {
        if (del || nargs != 3) {
            if (del)
                fprintf(stderr, "Error: -D and -b cannot be used together.\n");
            else
                fprintf(stderr, "Error: -b argument given but password file, username, or password missing.\n");
            return 1;
        }
    } else if (nargs != 2) {
        if (create)
            fprintf(stderr, "Error: -c argument given but password file or username missing.\n");
        else if (del)
            fprintf(stderr, "Error: -D argument given but password file or username missing.\n");
        else
            usage();
        return 1;
    }
    const char *file = args[0], *user = args[1];
    if (!user[0]) {
        fprintf(stderr, "Error: Empty username.\n");
        return 1;
    }
    if (strchr(user, ':')) {
        fprintf(stderr, "Error: Username must not contain the ':' character.\n");
        return 1;
    }
    if (strlen(user) > MAX_USERNAME) {
        fprintf(stderr, "Error: Username must be less than 65536 characters long.\n");
        return 1;
    }
    if (del)
        return edit_file(file, user, NULL, type, false);

    static char pw[MAX_PASSWORD + 2];
    if (batch) {
        if (strlen(args[2]) > MAX_PASSWORD) {
            fprintf(stderr, "Error: Password must be less than 65536 characters long.\n");
            return 1;
        }
        snprintf(pw, sizeof(pw), "%s", args[2]);
    } else {
        /* Check the file can be read before asking for a password. */
        if (!create && access(file, R_OK | W_OK) != 0) {
            fprintf(stderr, "Error: Unable to open password file %s. %s.\n", file, strerror(errno));
            return 1;
        }
        if (get_password(pw, sizeof(pw)) != 0)
            return 1;
    }
    int rc = edit_file(file, user, pw, type, create);
    memset(pw, 0, sizeof(pw));
    return rc;
}
