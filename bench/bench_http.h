/* bench_http.h - a minimal HTTP/1.1 client for the benchmarks: one
 * keep-alive connection to 127.0.0.1, requests with Content-Length bodies,
 * responses with Content-Length bodies (all that hopper sends). Far cheaper
 * than libcurl per request, so on a 2-core machine the client takes less of
 * the CPU the server is measured on. Not a general HTTP client. */
#ifndef HOPPER_BENCH_HTTP_H
#define HOPPER_BENCH_HTTP_H

#include <stddef.h>

typedef struct bench_response {
    int status;
    char *body; /* points into the connection's buffer; valid until the next call */
    size_t body_len;
} bench_response;

typedef struct bench_conn {
    int fd;
    char *buf; /* received bytes */
    size_t len, cap;
} bench_conn;

/* Connects to 127.0.0.1:port; 0 or -1 (errno set). */
int bench_conn_open(bench_conn *c, int port);
void bench_conn_close(bench_conn *c);

/* Sends one request and reads its whole response; body may be NULL when
 * len is 0. Returns 0, or -1 when the connection failed or the response
 * could not be parsed (the connection is then closed). */
int bench_conn_request(bench_conn *c, const char *method, const char *path, const void *body,
                       size_t len, bench_response *out);

/* Formats a request into dst (cap bytes): the head and then body. Returns
 * its length, or 0 if it does not fit. */
size_t bench_format_request(char *dst, size_t cap, const char *method, const char *path,
                            const void *body, size_t len);

/* Parses one response at the start of buf. Returns the bytes it takes when
 * complete, 0 when more is needed, -1 when it is not HTTP. */
long bench_parse_response(const char *buf, size_t len, bench_response *out);

#endif
