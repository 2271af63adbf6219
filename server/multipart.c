/* multipart.c - reading and writing multipart/mixed bodies; the grammar and
 * the choices made where RFC 2046 leaves room are in multipart.h. */
#include "multipart.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The enum counts from 0 without gaps, so it indexes this table. */
static const struct {
    const char *name;
    const char *text;
} error_table[] = {
#define MULTIPART__ERR_ROW(name, text) {#name, text},
    MULTIPART_ERRORS(MULTIPART__ERR_ROW)
#undef MULTIPART__ERR_ROW
};

static bool error_known(multipart_err err)
{
    return (unsigned)err < sizeof error_table / sizeof error_table[0];
}

const char *multipart_strerror(multipart_err err)
{
    return error_known(err) ? error_table[err].text : "unknown error";
}

const char *multipart_err_name(multipart_err err)
{
    return error_known(err) ? error_table[err].name : "UNKNOWN";
}

/* ---- Character classes (ASCII, never the locale's) ---- */

static bool is_digit_or_letter(unsigned char c)
{
    unsigned char lower = c | 0x20;
    return (c >= '0' && c <= '9') || (lower >= 'a' && lower <= 'z');
}

/* RFC 9110 tchar: what header names and unquoted parameter values are made of. */
static bool is_tchar(unsigned char c)
{
    return is_digit_or_letter(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 2046 bcharsnospace. */
static bool is_bchar_no_space(unsigned char c)
{
    return is_digit_or_letter(c) || (c != '\0' && strchr("'()+_,-./:=?", c) != NULL);
}

/* RFC 9110 OWS, and RFC 2046 transport padding (LWSP-char). */
static bool is_white(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* A byte a field value may hold: VCHAR, SP, HTAB and obs-text; no other
 * control character, so a value can be sent back as an HTTP header. */
static bool is_field_byte(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_token(const unsigned char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar(s[i]))
            return false;
    return true;
}

/* Length of boundary if RFC 2046 allows it (1 to 70 bchars, the last not a
 * space), else 0. Reads at most MULTIPART_BOUNDARY_SIZE bytes. */
static size_t boundary_length(const char *boundary)
{
    size_t len = 0;
    while (len <= MULTIPART_BOUNDARY_MAX && boundary[len] != '\0') {
        unsigned char c = (unsigned char)boundary[len];
        if (c != ' ' && !is_bchar_no_space(c))
            return 0;
        len++;
    }
    if (len == 0 || len > MULTIPART_BOUNDARY_MAX || boundary[len - 1] == ' ')
        return 0;
    return len;
}

/* ---- Header fields ---- */

/* Split the header line [line, eol) (without its CRLF) into name and value,
 * the value trimmed of white space. OUT: *out on success, unchanged
 * otherwise. */
static multipart_err split_header_line(const unsigned char *line, const unsigned char *eol,
                                       multipart_header *out)
{
    if (line < eol && is_white(*line))
        return MULTIPART_HEADER_FOLDED;
    const unsigned char *colon = memchr(line, ':', (size_t)(eol - line));
    if (colon == NULL)
        return MULTIPART_HEADER_NO_COLON;
    if (!is_token(line, (size_t)(colon - line)))
        return MULTIPART_HEADER_BAD_NAME;
    for (const unsigned char *p = colon + 1; p < eol; p++)
        if (!is_field_byte(*p))
            return MULTIPART_HEADER_BAD_VALUE;
    const unsigned char *value = colon + 1;
    const unsigned char *value_end = eol;
    while (value < value_end && is_white(*value))
        value++;
    while (value_end > value && is_white(value_end[-1]))
        value_end--;
    out->name = (const char *)line;
    out->name_len = (size_t)(colon - line);
    out->value = (const char *)value;
    out->value_len = (size_t)(value_end - value);
    return MULTIPART_OK;
}

bool multipart_header_valid(const multipart_header *h)
{
    const unsigned char *value = (const unsigned char *)h->value;
    if (!is_token((const unsigned char *)h->name, h->name_len))
        return false;
    if (h->value_len > 0 && (is_white(value[0]) || is_white(value[h->value_len - 1])))
        return false;
    for (size_t i = 0; i < h->value_len; i++)
        if (!is_field_byte(value[i]))
            return false;
    return true;
}

/* The first CRLF in [p, end), or NULL. A bare CR is passed over: it is left
 * for the line's own check to refuse. */
static const unsigned char *find_crlf(const unsigned char *p, const unsigned char *end)
{
    while ((p = memchr(p, '\r', (size_t)(end - p))) != NULL) {
        if (end - p >= 2 && p[1] == '\n')
            return p;
        p++;
    }
    return NULL;
}

/* ---- Content-Type ---- */

static const char *skip_white(const char *p)
{
    while (is_white((unsigned char)*p))
        p++;
    return p;
}

static const char *skip_token(const char *p)
{
    while (is_tchar((unsigned char)*p))
        p++;
    return p;
}

/* True if [start, end) is the token word, ignoring ASCII case. */
static bool token_is(const char *start, const char *end, const char *word)
{
    size_t len = strlen(word);
    return (size_t)(end - start) == len && strncasecmp(start, word, len) == 0;
}

/* Read a parameter value (a token or an RFC 9110 quoted-string) at p and,
 * when out is not NULL, copy it unescaped and NUL-terminated into out, which
 * has room for MULTIPART_BOUNDARY_SIZE bytes. Returns the position after the
 * value, or NULL if it is malformed or does not fit out. */
static const char *read_parameter_value(const char *p, char *out)
{
    size_t len = 0;
    if (*p != '"') {
        const char *end = skip_token(p);
        len = (size_t)(end - p);
        if (len == 0 || (out != NULL && len > MULTIPART_BOUNDARY_MAX))
            return NULL;
        if (out != NULL) {
            memcpy(out, p, len);
            out[len] = '\0';
        }
        return end;
    }
    for (p++; *p != '"'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\\') {
            c = (unsigned char)*++p; /* quoted-pair: HTAB, SP, VCHAR, obs-text */
            if (c != '\t' && c < 0x20)
                return NULL;
        } else if (c != '\t' && c < 0x20) {
            return NULL; /* includes the NUL of an unterminated string */
        }
        if (c == 0x7f)
            return NULL;
        if (out != NULL) {
            if (len == MULTIPART_BOUNDARY_MAX)
                return NULL;
            out[len] = (char)c;
        }
        len++;
    }
    if (out != NULL)
        out[len] = '\0';
    return p + 1;
}

bool multipart_boundary(const char *content_type, char out[MULTIPART_BOUNDARY_SIZE])
{
    if (content_type == NULL)
        return false;
    const char *p = skip_white(content_type);
    const char *type = p;
    p = skip_token(p);
    if (!token_is(type, p, "multipart") || *p != '/')
        return false;
    const char *subtype = ++p;
    p = skip_token(p);
    if (!token_is(subtype, p, "mixed"))
        return false;
    bool found = false;
    /* parameters = *( OWS ";" OWS [ parameter ] ), RFC 9110 section 5.6.6 */
    for (;;) {
        p = skip_white(p);
        if (*p == '\0')
            break;
        if (*p != ';')
            return false;
        p = skip_white(p + 1);
        if (*p == ';' || *p == '\0')
            continue;
        const char *name = p;
        p = skip_token(p);
        if (p == name || *p != '=')
            return false;
        bool is_boundary = token_is(name, p, "boundary");
        if (is_boundary && found)
            return false; /* two boundaries: no reading of the body is safe */
        p = read_parameter_value(p + 1, is_boundary ? out : NULL);
        if (p == NULL)
            return false;
        found = found || is_boundary;
    }
    return found && boundary_length(out) > 0;
}

/* ---- Parsing ---- */

typedef enum delimiter_kind {
    NOT_A_DELIMITER,
    DELIMITER_NEXT,  /* another part follows */
    DELIMITER_CLOSE, /* the last part has ended */
} delimiter_kind;

/* The position after "--" boundary at p, or NULL if it is not there. */
static const unsigned char *after_dash_boundary(const unsigned char *p, const unsigned char *end,
                                                const char *boundary, size_t boundary_len)
{
    if ((size_t)(end - p) < 2 + boundary_len || p[0] != '-' || p[1] != '-' ||
        memcmp(p + 2, boundary, boundary_len) != 0)
        return NULL;
    return p + 2 + boundary_len;
}

/* What "--boundary" followed by [p, end) is: the next-part line (padding
 * CRLF), the close (-- padding, then CRLF or the end), or part content.
 * OUT: *line_end, the first byte after the line, when it is a delimiter. */
static delimiter_kind delimiter_after(const unsigned char *p, const unsigned char *end,
                                      const unsigned char **line_end)
{
    bool close = end - p >= 2 && p[0] == '-' && p[1] == '-';
    if (close)
        p += 2;
    while (p < end && is_white(*p))
        p++;
    if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
        *line_end = p + 2;
        return close ? DELIMITER_CLOSE : DELIMITER_NEXT;
    }
    if (close && p == end) {
        *line_end = end;
        return DELIMITER_CLOSE;
    }
    return NOT_A_DELIMITER;
}

/* The first delimiter (CRLF "--" boundary and a tail delimiter_after
 * accepts) that starts in [from, end): a pointer to its CR, or NULL.
 * OUT: *kind and *line_end when found. */
static const unsigned char *find_delimiter(const unsigned char *from, const unsigned char *end,
                                           const char *boundary, size_t boundary_len,
                                           delimiter_kind *kind, const unsigned char **line_end)
{
    for (const unsigned char *p = from; (p = memchr(p, '\r', (size_t)(end - p))) != NULL; p++) {
        if (end - p < 2 || p[1] != '\n')
            continue;
        const unsigned char *tail = after_dash_boundary(p + 2, end, boundary, boundary_len);
        if (tail == NULL)
            continue;
        *kind = delimiter_after(tail, end, line_end);
        if (*kind != NOT_A_DELIMITER)
            return p;
    }
    return NULL;
}

/* Check the content [start, end) of one part and describe it in *part:
 * header lines, then an empty line and the body, all optional.
 * OUT: *part, partly written on failure. */
static multipart_err parse_part(const unsigned char *start, const unsigned char *end,
                                size_t max_headers, multipart_part *part)
{
    const unsigned char *p = start;
    part->header_lines = (const char *)start;
    part->header_count = 0;
    while (p < end && !(end - p >= 2 && p[0] == '\r' && p[1] == '\n')) {
        const unsigned char *eol = find_crlf(p, end);
        if (eol == NULL)
            return MULTIPART_HEADER_UNTERMINATED;
        multipart_header header;
        multipart_err err = split_header_line(p, eol, &header);
        if (err != MULTIPART_OK)
            return err;
        if (part->header_count == max_headers)
            return MULTIPART_TOO_MANY_HEADERS;
        part->header_count++;
        p = eol + 2;
    }
    part->header_lines_len = (size_t)(p - start);
    if (p < end)
        p += 2; /* the empty line */
    part->body = p;
    part->body_len = (size_t)(end - p);
    return MULTIPART_OK;
}

multipart_err multipart_parse(const void *body, size_t len, const char *boundary,
                              size_t max_headers, multipart_part *parts, size_t max_parts,
                              size_t *count)
{
    *count = 0;
    size_t boundary_len = boundary_length(boundary);
    if (boundary_len == 0)
        return MULTIPART_BAD_BOUNDARY;
    const unsigned char *data = body;
    if (data == NULL)
        return MULTIPART_NO_OPENING_DELIMITER; /* and no arithmetic on NULL */
    const unsigned char *end = data + len;
    const unsigned char *start = NULL; /* of the current part */
    delimiter_kind kind = NOT_A_DELIMITER;

    /* The opening line starts the body, or follows a preamble and its CRLF. */
    const unsigned char *tail = after_dash_boundary(data, end, boundary, boundary_len);
    if (tail != NULL)
        kind = delimiter_after(tail, end, &start);
    if (kind == NOT_A_DELIMITER &&
        find_delimiter(data, end, boundary, boundary_len, &kind, &start) == NULL)
        return MULTIPART_NO_OPENING_DELIMITER;
    if (kind == DELIMITER_CLOSE)
        return MULTIPART_NO_PARTS;

    while (kind == DELIMITER_NEXT) {
        if (*count == max_parts)
            return MULTIPART_TOO_MANY_PARTS;
        const unsigned char *next = NULL;
        const unsigned char *part_end =
            find_delimiter(start, end, boundary, boundary_len, &kind, &next);
        if (part_end == NULL)
            return MULTIPART_MISSING_CLOSE_DELIMITER;
        multipart_err err = parse_part(start, part_end, max_headers, &parts[*count]);
        if (err != MULTIPART_OK)
            return err;
        ++*count;
        start = next;
    }
    return MULTIPART_OK; /* what follows the close is the epilogue */
}

bool multipart_header_next(const multipart_part *part, size_t *offset, multipart_header *out)
{
    const unsigned char *lines = (const unsigned char *)part->header_lines;
    const unsigned char *end = lines + part->header_lines_len;
    if (*offset >= part->header_lines_len)
        return false;
    const unsigned char *eol = find_crlf(lines + *offset, end);
    if (eol == NULL || split_header_line(lines + *offset, eol, out) != MULTIPART_OK)
        return false; /* not from multipart_parse */
    *offset = (size_t)(eol + 2 - lines);
    return true;
}

const char *multipart_part_find(const multipart_part *part, const char *name, size_t *value_len)
{
    size_t name_len = strlen(name);
    size_t offset = 0;
    multipart_header h;
    while (multipart_header_next(part, &offset, &h)) {
        if (h.name_len == name_len && strncasecmp(h.name, name, name_len) == 0) {
            *value_len = h.value_len;
            return h.value;
        }
    }
    return NULL;
}

/* ---- Building ---- */

/* splitmix64's finalizer: a bijection of 64-bit values that looks random. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

uint64_t multipart_seed(void)
{
    static atomic_uint_fast64_t calls;
    uint64_t n = atomic_fetch_add(&calls, 1);
    struct timespec now = {0, 0};
    timespec_get(&now, TIME_UTC);
    /* The address of a local differs between threads and, with ASLR, runs. */
    uintptr_t here = (uintptr_t)&now;
    return mix64(n * UINT64_C(0x9e3779b97f4a7c15) ^ (uint64_t)here ^ ((uint64_t)now.tv_sec << 30) ^
                 (uint64_t)now.tv_nsec);
}

void multipart_boundary_candidate(uint64_t seed, uint64_t attempt,
                                  char out[MULTIPART_BOUNDARY_SIZE])
{
    /* The first half is a bijection of attempt, which makes candidates
     * distinct and so multipart_choose_boundary sure to end. */
    uint64_t first = mix64(seed + attempt);
    uint64_t second = mix64(first ^ UINT64_C(0x9e3779b97f4a7c15));
    snprintf(out, MULTIPART_BOUNDARY_SIZE, "hopper-%016" PRIx64 "%016" PRIx64, first, second);
}

/* Whether needle occurs in haystack. Not memmem(): glibc's two-way search
 * costs about one instruction a byte, a quarter of what a GET ?max=100
 * cost. A candidate boundary begins "hopper-", so the first byte found
 * with memchr() (vectorised) and a compare that fails within a few bytes
 * are far cheaper, whatever the payload. */
static bool occurs_in(const void *haystack, size_t haystack_len, const char *needle,
                      size_t needle_len)
{
    if (needle_len == 0)
        return true;
    const unsigned char *p = haystack, *end = p + haystack_len;
    while ((size_t)(end - p) >= needle_len) {
        p = memchr(p, (unsigned char)needle[0], (size_t)(end - p) - needle_len + 1);
        if (p == NULL)
            return false;
        if (memcmp(p, needle, needle_len) == 0)
            return true;
        p++;
    }
    return false;
}

static bool occurs_in_parts(const multipart_outgoing_part *parts, size_t count, const char *needle,
                            size_t needle_len)
{
    for (size_t i = 0; i < count; i++) {
        if (occurs_in(parts[i].body, parts[i].body_len, needle, needle_len))
            return true;
        for (size_t j = 0; j < parts[i].header_count; j++) {
            const multipart_header *h = &parts[i].headers[j];
            if (occurs_in(h->name, h->name_len, needle, needle_len) ||
                occurs_in(h->value, h->value_len, needle, needle_len))
                return true;
        }
    }
    return false;
}

void multipart_choose_boundary(const multipart_outgoing_part *parts, size_t count, uint64_t seed,
                               char out[MULTIPART_BOUNDARY_SIZE])
{
    /* Parts of S bytes hold fewer than S distinct strings of the candidates'
     * length, so at most S + 1 attempts; in practice the first one. */
    for (uint64_t attempt = 0;; attempt++) {
        multipart_boundary_candidate(seed, attempt, out);
        if (!occurs_in_parts(parts, count, out, MULTIPART_GENERATED_BOUNDARY_LEN))
            return;
    }
}

void multipart_content_type(const char *boundary, char out[MULTIPART_CONTENT_TYPE_SIZE])
{
    /* bchars that are not tchars (space, "(),/:=?") need the quotes. */
    if (is_token((const unsigned char *)boundary, strlen(boundary)))
        snprintf(out, MULTIPART_CONTENT_TYPE_SIZE, "multipart/mixed; boundary=%s", boundary);
    else
        snprintf(out, MULTIPART_CONTENT_TYPE_SIZE, "multipart/mixed; boundary=\"%s\"", boundary);
}

size_t multipart_body_size(const multipart_outgoing_part *parts, size_t count, const char *boundary)
{
    size_t boundary_line = 2 + strlen(boundary) + 2; /* "--" B CRLF */
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        n += boundary_line;
        for (size_t j = 0; j < parts[i].header_count; j++)
            n += parts[i].headers[j].name_len + 2 + parts[i].headers[j].value_len + 2;
        n += 2 + parts[i].body_len + 2;
    }
    return n + boundary_line + 2; /* the close, "--" B "--" CRLF */
}

static unsigned char *put(unsigned char *p, const void *bytes, size_t len)
{
    if (len > 0) /* bytes may be NULL for an empty body */
        memcpy(p, bytes, len);
    return p + len;
}

size_t multipart_write_body(unsigned char *out, const multipart_outgoing_part *parts, size_t count,
                            const char *boundary)
{
    size_t boundary_len = strlen(boundary);
    unsigned char *p = out;
    for (size_t i = 0; i < count; i++) {
        p = put(p, "--", 2);
        p = put(p, boundary, boundary_len);
        p = put(p, "\r\n", 2);
        for (size_t j = 0; j < parts[i].header_count; j++) {
            const multipart_header *h = &parts[i].headers[j];
            p = put(p, h->name, h->name_len);
            p = put(p, ": ", 2);
            p = put(p, h->value, h->value_len);
            p = put(p, "\r\n", 2);
        }
        p = put(p, "\r\n", 2);
        p = put(p, parts[i].body, parts[i].body_len);
        p = put(p, "\r\n", 2);
    }
    p = put(p, "--", 2);
    p = put(p, boundary, boundary_len);
    p = put(p, "--\r\n", 4);
    return (size_t)(p - out);
}
