/* options.c - the command line and the environment read with the flags'
 * table (options_table.c), and the parsers of SIZE, counts, seconds and
 * HOST:PORT. */
#include "options.h"

#include "options_table.h"

#include "envelope.h"
#include "forward_rules.h"
#include "hopper/hopper.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "max-wait" -> "HOPPER_MAX_WAIT" */
static void env_name(const char *flag, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "HOPPER_");
    for (const char *p = flag; *p && n + 1 < size; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

/* What --help says a flag's default is. */
static const char *default_text(const option_spec *s)
{
    if (s == &option_specs[OPT_MEMORY_BYTES])
        return "a quarter of --memory-limit";
    if (s->def == NULL && s->kind != KIND_COUNT)
        return "none";
    if (s->def == NULL)
        return "the number of CPUs";
    return s->def[0] ? s->def : "none";
}

static void print_usage(FILE *out)
{
    fprintf(out,
            "Usage: hopper [flags]\n       hopper token\n\nhopper %s - an HTTP message buffer "
            "with bounded memory.\n\n",
            HOP_VERSION);
    for (size_t i = 0; i < OPT_COUNT; i++) {
        const option_spec *s = &option_specs[i];
        char left[64], env[64];
        snprintf(left, sizeof left, "--%s%s%s", s->flag, s->value_name ? " " : "",
                 s->value_name ? s->value_name : "");
        env_name(s->flag, env, sizeof env);
        fprintf(out, "  %-28s %s\n  %-28s default %s; env %s\n", left, s->help, "", default_text(s),
                env);
    }
    fprintf(out, "  %-28s print this help and exit\n", "--help");
    fputs(option_help_tail, out);
}

/* ---- value parsers: NULL on success, else what is wrong ---- */

static const char *parse_digits(const char *text, const char **end, uint64_t *out)
{
    const char *p = text;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*p))
        return "is not a non-negative integer";
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return "is too large";
        v = v * 10 + d;
    }
    *end = p;
    *out = v;
    return NULL;
}

const char *options_parse_size(const char *text, uint64_t *out)
{
    static const struct {
        const char *suffix;
        unsigned shift;
    } units[] = {{"", 0}, {"K", 10}, {"KiB", 10}, {"M", 20}, {"MiB", 20}, {"G", 30}, {"GiB", 30}};
    static const char not_a_size[] =
        "is not a size (bytes, or a number followed by K, KiB, M, MiB, G or GiB)";
    const char *end;
    uint64_t v;
    if (!isdigit((unsigned char)text[0]))
        return not_a_size;
    const char *why = parse_digits(text, &end, &v);
    if (why)
        return why; /* too large */
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (v > (UINT64_MAX >> units[i].shift))
                return "is too large";
            *out = v << units[i].shift;
            return NULL;
        }
    }
    return not_a_size;
}

const char *options_parse_count(const char *text, uint64_t *out)
{
    const char *end;
    const char *why = parse_digits(text, &end, out);
    if (why == NULL && *end != '\0')
        why = "is not a non-negative integer";
    return why;
}

uint64_t options_seconds_ms(double seconds)
{
    return (uint64_t)(seconds * 1000.0 + 0.5);
}

bool options_parse_seconds(const char *text, double max, double *seconds)
{
    /* strtod alone would also take leading blanks, signs, hex, "nan" and
     * "inf": admit only the characters of a plain decimal number */
    if (text == NULL || (!isdigit((unsigned char)text[0]) && text[0] != '.'))
        return false;
    for (const char *p = text; *p; p++) {
        if (!isdigit((unsigned char)*p) && strchr(".eE+-", *p) == NULL)
            return false;
    }
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(v) || v < 0 || v > max)
        return false;
    *seconds = v;
    return true;
}

static const char *parse_boolean(const char *text, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes"}, *const no[] = {"0", "false", "no"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcmp(text, yes[i]) == 0 || strcmp(text, no[i]) == 0) {
            *out = strcmp(text, yes[i]) == 0;
            return NULL;
        }
    }
    return "is not one of " BOOLEAN_WORDS;
}

static const char *parse_address(const char *text, server_options *out)
{
    char host[256];
    const char *port;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            return "is not [IPv6]:PORT";
        size_t n = (size_t)(close - text - 1);
        if (n == 0 || n >= sizeof host)
            return "has a bad IPv6 address";
        memcpy(host, text + 1, n);
        host[n] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL)
            return "is not HOST:PORT";
        size_t n = (size_t)(colon - text);
        if (n == 0 || n >= sizeof host || memchr(text, ':', n) != NULL)
            return "is not HOST:PORT (write IPv6 addresses as [ADDRESS]:PORT)";
        memcpy(host, text, n);
        host[n] = '\0';
        port = colon + 1;
    }
    uint64_t port_number;
    if (options_parse_count(port, &port_number) != NULL || port_number > 65535)
        return "has a bad port (0..65535)";

    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
        return "has a host that does not resolve";
    memcpy(&out->listen_addr, res->ai_addr, res->ai_addrlen);
    out->listen_addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return NULL;
}

/* A value as parse_kind() read it, before it is stored in its option. */
typedef struct parsed_value {
    uint64_t number; /* KIND_SIZE, KIND_COUNT */
    double seconds;  /* KIND_SECONDS */
    bool flag;       /* KIND_FLAG */
} parsed_value;

/* Parse text as a value of s's kind into *v. An address and a header list
 * have no simpler form and go straight into out. NULL on success, else what
 * is wrong. */
static const char *parse_kind(const option_spec *s, const char *text, server_options *out,
                              parsed_value *v)
{
    switch (s->kind) {
    case KIND_ADDRESS:
        return parse_address(text, out);
    case KIND_PATH:
        return NULL;
    case KIND_SIZE:
        return options_parse_size(text, &v->number);
    case KIND_COUNT:
        return options_parse_count(text, &v->number);
    case KIND_SECONDS:
        if (!options_parse_seconds(text, (double)s->max, &v->seconds)) {
            static char range[64]; /* options are parsed once, on one thread */
            snprintf(range, sizeof range, "is not a number of seconds from 0 to %zu", s->max);
            return range;
        }
        return NULL;
    case KIND_FLAG:
        return parse_boolean(text, &v->flag);
    case KIND_HEADERS: {
        static char detail[256]; /* options are parsed once, on one thread */
        if (!keep_headers_parse(text, &out->keep_headers, detail, sizeof detail))
            return detail;
        return NULL;
    }
    case KIND_FORWARDS: {
        static char detail[FORWARD_URL_MAX + 256];
        if (!forward_rules_add(&out->forward, text, detail, sizeof detail))
            return detail;
        return NULL;
    }
    case KIND_VERIFIES: {
        static char detail[1024];
        if (!verify_rules_add(&out->verify, text, detail, sizeof detail))
            return detail;
        return NULL;
    }
    }
    return "is of an unknown kind";
}

/* Store v (parsed from text) as forwarding option i of out (the --forward
 * list itself is parsed into out by parse_kind()). */
/* True if text is an HTTP header name: a token (RFC 9110). */
static bool header_name_valid(const char *text)
{
    for (const char *p = text; *p; p++) {
        if (!isalnum((unsigned char)*p) && strchr("!#$%&'*+-.^_`|~", *p) == NULL)
            return false;
    }
    return text[0] != '\0';
}

/* store_value() for TLS and --verify (whose entries parse_kind() read). */
static const char *store_security_value(size_t i, const char *text, server_options *out)
{
    if (i == OPT_TLS_CERT)
        out->tls_cert = text;
    else if (i == OPT_TLS_KEY)
        out->tls_key = text;
    return NULL;
}

/* store_value() for the options of tokens, else of TLS and --verify. */
static const char *store_auth_value(size_t i, const char *text, const parsed_value *v,
                                    server_options *out)
{
    if (i == OPT_AUTH_FILE)
        out->auth_file = text;
    else if (i == OPT_PUBLIC_METRICS)
        out->public_metrics = v->flag;
    else
        return store_security_value(i, text, out);
    return NULL;
}

/* store_value() for the options of duplicates refused, else of tokens. */
static const char *store_dedup_value(size_t i, const char *text, const parsed_value *v,
                                     server_options *out)
{
    switch (i) {
    case OPT_DEDUP_HEADER:
        if (!header_name_valid(text))
            return "is not a header name";
        out->dedup_header = text;
        break;
    case OPT_DEDUP_WINDOW:
        out->dedup_window = v->seconds;
        break;
    case OPT_DEDUP_MAX_KEYS:
        out->dedup_max_keys = (size_t)v->number;
        break;
    default:
        return store_auth_value(i, text, v, out);
    }
    return NULL;
}

static const char *store_forward_value(size_t i, const char *text, const parsed_value *v,
                                       server_options *out)
{
    switch (i) {
    case OPT_FORWARD_TIMEOUT:
        if (v->seconds <= 0)
            return "is not a number of seconds above 0";
        out->forward_timeout = v->seconds;
        break;
    case OPT_FORWARD_MAX_ATTEMPTS:
        out->forward_max_attempts = (size_t)v->number;
        break;
    case OPT_FORWARD_RETRY_MIN:
        out->forward_retry_min = v->seconds;
        break;
    case OPT_FORWARD_RETRY_MAX:
        out->forward_retry_max = v->seconds;
        break;
    case OPT_FORWARD_CONCURRENCY:
        out->forward_concurrency = (size_t)v->number;
        break;
    case OPT_FORWARD_SECRET:
        out->forward_secret = text;
        break;
    case OPT_FORWARD_CA:
        out->forward_ca = text;
        break;
    default:
        return store_dedup_value(i, text, v, out);
    }
    return NULL;
}

/* Store v as option i of out if i is a delay option (delayed sends,
 * redelivery backoff): true; else false. */
static bool store_delay_value(size_t i, const parsed_value *v, server_options *out)
{
    switch (i) {
    case OPT_MAX_DELAY:
        out->max_delay = v->seconds;
        return true;
    case OPT_RETRY_DELAY:
        out->retry_delay = v->seconds;
        return true;
    case OPT_RETRY_DELAY_MAX:
        out->retry_delay_max = v->seconds;
        return true;
    }
    return false;
}

/* Store v (parsed from text) as option i of out if it is one of how long
 * and how often a message is handed out; else as a delay or forwarding
 * option. */
static const char *store_lifetime_value(size_t i, const char *text, const parsed_value *v,
                                        server_options *out)
{
    switch (i) {
    case OPT_MAX_LEASE:
        out->max_lease = v->seconds;
        break;
    case OPT_MAX_DELIVERIES:
        out->max_deliveries = (size_t)v->number;
        break;
    case OPT_MAX_AGE:
        out->max_age = v->seconds;
        break;
    default:
        return store_delay_value(i, v, out) ? NULL : store_forward_value(i, text, v, out);
    }
    return NULL;
}

/* Store v (parsed from text) as option i of out. NULL on success, else
 * what is wrong with it for this option in particular. */
static const char *store_value(size_t i, const char *text, const parsed_value *v,
                               server_options *out)
{
    switch (i) {
    case OPT_LISTEN:
        out->listen = text;
        break;
    case OPT_DATA_DIR:
        out->data_dir = text;
        break;
    case OPT_MEMORY_LIMIT:
        out->memory_limit = (size_t)v->number;
        break;
    case OPT_DISK_LIMIT:
        out->disk_limit = v->number;
        break;
    case OPT_MEMORY_BYTES:
        out->memory_bytes = (size_t)v->number;
        break;
    case OPT_FILE_BYTES:
        out->file_bytes = (size_t)v->number;
        break;
    case OPT_MAX_DISK_FILES:
        out->max_disk_files = (size_t)v->number;
        break;
    case OPT_MAX_MESSAGE_BYTES:
        out->max_message_bytes = (size_t)v->number;
        break;
    case OPT_MAX_CHANNELS:
        out->max_channels = (size_t)v->number;
        break;
    case OPT_MAX_WAIT:
        out->max_wait = v->seconds;
        break;
    case OPT_THREADS:
        out->threads = (unsigned)v->number;
        break;
    case OPT_DURABLE:
        out->durable = v->flag;
        break;
    case OPT_KEEP_HEADERS:
        break; /* parsed into out->keep_headers by parse_kind() */
    case OPT_MAX_CONNECTIONS:
        out->max_connections = (size_t)v->number;
        break;
    case OPT_IDLE_TIMEOUT:
        if (v->seconds < (double)option_specs[i].min)
            return "is not a number of seconds from 1 to " MAX_WAIT_TEXT;
        out->idle_timeout = v->seconds;
        break;
    default:
        return store_lifetime_value(i, text, v, out);
    }
    return NULL;
}

/* Parse text as option i into out. NULL on success, else what is wrong. */
static const char *parse_value(size_t i, const char *text, server_options *out)
{
    const option_spec *s = &option_specs[i];
    if (text[0] == '\0' && s->kind != KIND_HEADERS)
        return "is empty";
    parsed_value v = {0};
    const char *why = parse_kind(s, text, out, &v);
    if (why)
        return why;
    if ((s->kind == KIND_SIZE || s->kind == KIND_COUNT) && (v.number < s->min || v.number > s->max))
        return "is out of range";
    return store_value(i, text, &v, out);
}

static unsigned cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > MAX_THREADS ? MAX_THREADS : (unsigned)n;
}

/* The defaults that follow from other options or the machine; an option
 * comes after those its default is computed from. */
static void computed_default(size_t i, server_options *out)
{
    if (i == OPT_THREADS)
        out->threads = cpu_count();
    else if (i == OPT_MEMORY_BYTES)
        out->memory_bytes = out->memory_limit / MEMORY_BYTES_SHARE;
}

uint64_t options_reserve_bytes(const server_options *o)
{
    /* durable: memory holds nothing that is not in a queue file already */
    uint64_t memory = o->durable ? 0 : o->memory_limit;
    return memory + (uint64_t)o->max_channels * OPTIONS_RESERVE_PER_CHANNEL;
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "hopper: <message>" and the hint; main exits 2. */
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("hopper: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nTry 'hopper --help'.\n", stderr);
    va_end(ap);
}

void options_core_limits(const server_options *o, hop_limits *out)
{
    *out = (hop_limits){.memory_bytes = o->memory_bytes,
                        .file_bytes = o->file_bytes,
                        .max_disk_files = o->max_disk_files,
                        .max_message_bytes = o->max_message_bytes + ENVELOPE_ALLOWANCE,
                        .durable = o->durable};
}

/* The budget's arithmetic (see --help): a channel's share within the
 * whole, and a disk limit that holds the reserve and one queue file. */
static bool budget_consistent(const server_options *o)
{
    if (o->memory_bytes > o->memory_limit) {
        usage_error("--memory-bytes %zu is more than --memory-limit %zu: a channel's share of "
                    "memory cannot be larger than all of it",
                    o->memory_bytes, o->memory_limit);
        return false;
    }
    uint64_t reserve = options_reserve_bytes(o);
    if (o->disk_limit < reserve + o->file_bytes) {
        usage_error("--disk-limit %" PRIu64 " cannot hold the reserve for a clean stop (%" PRIu64
                    " bytes: --memory-limit %zu%s + %u per --max-channels %zu) and one "
                    "--file-bytes %zu: give --disk-limit %" PRIu64 " or more",
                    o->disk_limit, reserve, o->durable ? (size_t)0 : o->memory_limit,
                    o->durable ? " (0: --durable)" : "", OPTIONS_RESERVE_PER_CHANNEL,
                    o->max_channels, o->file_bytes, reserve + o->file_bytes);
        return false;
    }
    return true;
}

/* Checks across options, once all are known. */
static bool options_consistent(const server_options *o)
{
    if (o->durable && o->max_disk_files == 0) {
        usage_error("--durable keeps every message in queue files, and --max-disk-files 0 "
                    "allows none: give --max-disk-files a number above 0, or drop --durable");
        return false;
    }
    hop_limits limits;
    options_core_limits(o, &limits);
    if (hop_limits_check(&limits) != HOP_OK) {
        fprintf(stderr,
                "hopper: --memory-bytes %zu cannot hold one message of --max-message-bytes %zu "
                "(%zu bytes with bookkeeping) and --max-disk-files is 0\n"
                "Try 'hopper --help'.\n",
                o->memory_bytes, o->max_message_bytes,
                hop_message_cost(o->max_message_bytes + ENVELOPE_ALLOWANCE));
        return false;
    }
    if (o->auth_file && keep_headers_match(&o->keep_headers, "Authorization", 13)) {
        usage_error("--keep-headers keeps Authorization, which with --auth-file is the senders' "
                    "token: every receiver would read it");
        return false;
    }
    if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
        usage_error("%s is given without %s: HTTPS needs both the certificate and its key",
                    o->tls_cert ? "--tls-cert" : "--tls-key",
                    o->tls_cert ? "--tls-key" : "--tls-cert");
        return false;
    }
    if (o->forward_retry_min > o->forward_retry_max) {
        usage_error("--forward-retry-min %g is more than --forward-retry-max %g",
                    o->forward_retry_min, o->forward_retry_max);
        return false;
    }
    return budget_consistent(o);
}

/* The option named by arg ("--flag" or "--flag=value"), or OPT_COUNT if
 * there is none. OUT: *eq, the '=' in arg or NULL. */
static size_t option_of(const char *arg, const char **eq)
{
    const char *name = arg + 2;
    *eq = strchr(name, '=');
    size_t name_len = *eq ? (size_t)(*eq - name) : strlen(name);
    size_t i = 0;
    while (i < OPT_COUNT && !(strlen(option_specs[i].flag) == name_len &&
                              strncmp(option_specs[i].flag, name, name_len) == 0))
        i++;
    return i;
}

/* Add the entries of one --forward or --verify flag (option i) now: the
 * flag may be repeated, and every one counts. False (printed) if they are
 * bad. */
static bool add_entries(size_t i, const char *text, server_options *out)
{
    const char *why = parse_value(i, text, out);
    if (why)
        usage_error("--%s: %s", option_specs[i].flag, why);
    return why == NULL;
}

/* True for the options whose flag may be given again, adding entries. */
static bool repeatable(const option_spec *s)
{
    return s->kind == KIND_FORWARDS || s->kind == KIND_VERIFIES;
}

/* Read the command line into given[] (the text of each flag given, NULL
 * for the others; borrowed from argv). OPTIONS_HELP or OPTIONS_ERROR when
 * that is the outcome (printed), else OPTIONS_OK. */
static options_result read_command_line(int argc, char **argv, const char *given[OPT_COUNT],
                                        server_options *out)
{
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            print_usage(stdout);
            return OPTIONS_HELP;
        }
        if (strncmp(arg, "--", 2) != 0) {
            usage_error("unexpected argument '%s'", arg);
            return OPTIONS_ERROR;
        }
        const char *eq;
        size_t i = option_of(arg, &eq);
        if (i == OPT_COUNT) {
            usage_error("unknown flag '%s'", arg);
            return OPTIONS_ERROR;
        }
        if (option_specs[i].kind == KIND_FLAG) {
            if (eq) {
                char env[64];
                env_name(option_specs[i].flag, env, sizeof env);
                usage_error("--%s takes no value (in the environment, %s is one of %s)",
                            option_specs[i].flag, env, BOOLEAN_WORDS);
                return OPTIONS_ERROR;
            }
            given[i] = "yes";
        } else if (eq) {
            given[i] = eq + 1;
        } else if (a + 1 < argc) {
            given[i] = argv[++a];
        } else {
            usage_error("--%s needs a value (%s)", option_specs[i].flag,
                        option_specs[i].value_name);
            return OPTIONS_ERROR;
        }
        if (repeatable(&option_specs[i]) && !add_entries(i, given[i], out))
            return OPTIONS_ERROR;
    }
    return OPTIONS_OK;
}

/* options_parse() but for the secrets of --verify left behind on failure. */
static options_result parse_all(int argc, char **argv, server_options *out)
{
    const char *given[OPT_COUNT] = {0};
    options_result read = read_command_line(argc, argv, given, out);
    if (read != OPTIONS_OK)
        return read;

    for (size_t i = 0; i < OPT_COUNT; i++) {
        const option_spec *s = &option_specs[i];
        char env[64];
        env_name(s->flag, env, sizeof env);
        const char *text = given[i];
        char source[80];
        snprintf(source, sizeof source, "--%s", s->flag);
        if (text == NULL && (text = getenv(env)) != NULL)
            snprintf(source, sizeof source, "%s", env);
        if (repeatable(s) && given[i])
            continue; /* parsed as the command line was read */
        if (text == NULL && s->def == NULL) {
            computed_default(i, out);
            continue;
        }
        if (text == NULL)
            text = s->def;
        const char *why = parse_value(i, text, out);
        if (why) {
            usage_error("%s: '%s' %s", source, text, why);
            return OPTIONS_ERROR;
        }
    }
    return options_consistent(out) ? OPTIONS_OK : OPTIONS_ERROR;
}

options_result options_parse(int argc, char **argv, server_options *out)
{
    memset(out, 0, sizeof *out);
    options_result result = parse_all(argc, argv, out);
    if (result != OPTIONS_OK)
        verify_rules_free(&out->verify);
    return result;
}
