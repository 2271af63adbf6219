/* sse_client.c - the raw-socket SSE client of the stream tests (see
 * sse_client.h). */
#include "sse_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void append(char **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t want = (*len + n + 1) * 2;
        *buf = realloc(*buf, want);
        *cap = want;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
}

int sse_open(sse_client *c, const hs_server *s, const char *path, int rcvbuf)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char req[1200];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n", path);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0 || write(c->fd, req, n) != n) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

/* The response head out of raw, once it is all there. */
static void take_head(sse_client *c)
{
    char *end = c->raw ? strstr((char *)c->raw, "\r\n\r\n") : NULL;
    if (c->status || end == NULL)
        return;
    size_t n = (size_t)(end - (char *)c->raw) + 4;
    snprintf(c->head, sizeof c->head, "%.*s", (int)n, (char *)c->raw);
    sscanf(c->head, "HTTP/1.1 %d", &c->status);
    memmove(c->raw, c->raw + n, c->raw_len - n + 1);
    c->raw_len -= n;
}

/* Whole chunks out of raw into body. */
static void take_chunks(sse_client *c)
{
    while (c->status && !c->ended && c->raw_len > 0) {
        char *crlf = strstr((char *)c->raw, "\r\n");
        if (crlf == NULL)
            return;
        size_t size = strtoul((char *)c->raw, NULL, 16);
        size_t line = (size_t)(crlf - (char *)c->raw) + 2;
        if (c->raw_len < line + size + 2)
            return;
        if (size == 0)
            c->ended = c->finished = true;
        append(&c->body, &c->body_len, &c->body_cap, c->raw + line, size);
        memmove(c->raw, c->raw + line + size + 2, c->raw_len - line - size - 2 + 1);
        c->raw_len -= line + size + 2;
    }
}

bool sse_pump(sse_client *c, int timeout_ms)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (c->ended || poll(&p, 1, timeout_ms) <= 0)
        return !c->ended;
    char buf[65536];
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n <= 0) {
        c->ended = true;
        return false;
    }
    append((char **)&c->raw, &c->raw_len, &c->raw_cap, buf, (size_t)n);
    take_head(c);
    take_chunks(c);
    return true;
}

/* The value of the line starting with field in block[0..n). */
static void line_value(const char *block, size_t n, const char *field, char *out, size_t size,
                       const char **at, size_t *len)
{
    size_t f = strlen(field);
    for (const char *p = block; p < block + n;) {
        const char *eol = memchr(p, '\n', (size_t)(block + n - p));
        size_t l = eol ? (size_t)(eol - p) : (size_t)(block + n - p);
        if (l >= f && memcmp(p, field, f) == 0) {
            if (out)
                snprintf(out, size, "%.*s", (int)(l - f), p + f);
            if (at) {
                *at = p + f;
                *len = l - f;
            }
            return;
        }
        p += l + 1;
    }
}

bool sse_take(sse_client *c, sse_block *b)
{
    char *end = c->body ? strstr(c->body, "\n\n") : NULL;
    if (end == NULL)
        return false;
    size_t n = (size_t)(end - c->body);
    memset(b, 0, sizeof *b);
    if (c->body[0] == ':') {
        b->comment = true;
        snprintf(b->text, sizeof b->text, "%.*s", (int)n, c->body);
    } else {
        line_value(c->body, n, "id: ", b->id, sizeof b->id, NULL, NULL);
        line_value(c->body, n, "event: ", b->event, sizeof b->event, NULL, NULL);
        const char *data = NULL;
        size_t len = 0;
        line_value(c->body, n, "data: ", NULL, 0, &data, &len);
        if (data)
            b->data = json_loadb(data, len, 0, NULL);
    }
    memmove(c->body, end + 2, c->body_len - n - 2 + 1);
    c->body_len -= n + 2;
    return true;
}

bool sse_next(sse_client *c, sse_block *b, int timeout_ms)
{
    double deadline = hs_now() + timeout_ms / 1000.0;
    for (;;) {
        if (sse_take(c, b))
            return true;
        int left = (int)((deadline - hs_now()) * 1000);
        if (left <= 0 || c->ended)
            return false;
        sse_pump(c, left);
    }
}

bool sse_next_event(sse_client *c, sse_block *b, int timeout_ms)
{
    while (sse_next(c, b, timeout_ms)) {
        if (!b->comment)
            return true;
    }
    return false;
}

void sse_block_free(sse_block *b)
{
    json_decref(b->data);
    b->data = NULL;
}

static void release(sse_client *c)
{
    free(c->raw);
    free(c->body);
    c->raw = NULL;
    c->body = NULL;
    c->fd = -1;
}

void sse_close(sse_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    release(c);
}

void sse_reset(sse_client *c)
{
    if (c->fd >= 0)
        hs_reset(c->fd);
    release(c);
}
