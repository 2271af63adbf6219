/* bench_http.c - the benchmarks' minimal HTTP/1.1 client (bench_http.h). */
#include "bench_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define HEAD_MAX 512

int bench_conn_open(bench_conn *c, int port)
{
    *c = (bench_conn){.fd = -1};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    return 0;
}

void bench_conn_close(bench_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    *c = (bench_conn){.fd = -1};
}

static int head_printf(char *dst, size_t cap, const char *method, const char *path, size_t len,
                       int with_body)
{
    if (with_body)
        return snprintf(dst, cap,
                        "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n",
                        method, path, len);
    return snprintf(dst, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", method, path);
}

size_t bench_format_request(char *dst, size_t cap, const char *method, const char *path,
                            const void *body, size_t len)
{
    int n = head_printf(dst, cap, method, path, len, body != NULL || len > 0);
    if (n < 0 || (size_t)n + len > cap)
        return 0;
    if (len)
        memcpy(dst + n, body, len);
    return (size_t)n + len;
}

long bench_parse_response(const char *buf, size_t len, bench_response *out)
{
    if (len < 12)
        return 0;
    if (memcmp(buf, "HTTP/1.", 7) != 0)
        return -1;
    const char *end = NULL;
    for (size_t i = 3; i < len; i++)
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
            end = buf + i + 1;
            break;
        }
    if (end == NULL)
        return len > 65536 ? -1 : 0;
    out->status = atoi(buf + 9);
    size_t body_len = 0;
    for (const char *p = buf; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            break;
        if (eol - p > 15 && strncasecmp(p, "Content-Length:", 15) == 0)
            body_len = strtoull(p + 15, NULL, 10);
        p = eol + 1;
    }
    size_t head = (size_t)(end - buf);
    if (len < head + body_len)
        return 0;
    out->body = (char *)end;
    out->body_len = body_len;
    return (long)(head + body_len);
}

static int write_all(int fd, const struct iovec *iov_in, int n)
{
    struct iovec iov[2];
    memcpy(iov, iov_in, sizeof iov[0] * (size_t)n);
    int i = 0;
    while (i < n) {
        ssize_t w = writev(fd, iov + i, n - i);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        while (i < n && (size_t)w >= iov[i].iov_len)
            w -= (ssize_t)iov[i++].iov_len;
        if (i < n) {
            iov[i].iov_base = (char *)iov[i].iov_base + w;
            iov[i].iov_len -= (size_t)w;
        }
    }
    return 0;
}

int bench_conn_request(bench_conn *c, const char *method, const char *path, const void *body,
                       size_t len, bench_response *out)
{
    char head[HEAD_MAX];
    int n = head_printf(head, sizeof head, method, path, len, body != NULL || len > 0);
    if (n < 0 || n >= (int)sizeof head)
        return -1;
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, len}};
    if (write_all(c->fd, iov, len ? 2 : 1) != 0)
        goto fail;
    c->len = 0;
    for (;;) {
        long used = c->len ? bench_parse_response(c->buf, c->len, out) : 0;
        if (used < 0)
            goto fail;
        if (used > 0)
            return 0; /* one request at a time: nothing follows the response */
        if (c->cap - c->len < 16384) {
            size_t cap = c->cap ? c->cap * 2 : 65536;
            char *b = realloc(c->buf, cap);
            if (b == NULL)
                goto fail;
            c->buf = b;
            c->cap = cap;
        }
        ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto fail;
        c->len += (size_t)r;
    }
fail:
    close(c->fd);
    c->fd = -1;
    return -1;
}
