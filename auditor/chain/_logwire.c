/* The optional compiled reader of eth_getLogs replies (auditor.chain._logwire).
 *
 * `parse_logs(body, low, high)` reads a JSON-RPC reply whose result is a list of logs straight from the body bytes
 * into columns, and checks every kept field as `auditor.chain.rpc` does in Python: address "0x" and 40 hex digits,
 * topics and hashes "0x" and 64, data "0x" and whole bytes, block number and log index "0x" and at least one digit,
 * every block inside [low, high] (-1: unbounded). It returns
 *     (id, address, topics, data, block_number, log_index, transaction_hash, block_hash)
 * (id None when the reply has none) with one list per field (topics: a tuple of strings per log; every value a str exactly as the node spelled it),
 * or None for anything else: an error reply, a field missing, twice or malformed, a string with an escape or a
 * byte outside ASCII, any JSON it does not read plainly. None means "not judged here": the caller then reads the
 * body the Python way, which accepts or names what is wrong. This reader therefore never accepts what the Python
 * path rejects (tests/test_logwire.py checks it against that path on generated and mutated replies).
 *
 * It reads in two passes. The first finds and checks every field with the interpreter lock released, so the
 * client's other threads (the consumer of the last window, the senders of the next) run meanwhile; the second
 * makes the objects. A value equal to the previous log's (one contract, a block's hash, a transaction's hash, an
 * event's topic) is the same str object: no allocation for repeats. Nothing here talks to a node.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
#define MAX_TOPICS 4 /* LOG0..LOG4: a log with more is left to the Python path */

static unsigned char IS_HEX[256];
static unsigned char IS_PLAIN[256]; /* printable ASCII but the backslash (the quote ends a string) */

typedef struct {
    const char *p;
    const char *end;
} Cursor;

static inline void skip_space(Cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) {
        c->p++;
    }
}

static inline int take(Cursor *c, char ch) {
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A string's content, unchecked: its start and length (up to the next quote). The caller checks every byte. */
static inline int raw_string(Cursor *c, const char **start, Py_ssize_t *length) {
    skip_space(c);
    if (c->p >= c->end || *c->p != '"') {
        return 0;
    }
    const char *q = memchr(c->p + 1, '"', (size_t)(c->end - c->p - 1));
    if (q == NULL) {
        return 0;
    }
    *start = c->p + 1;
    *length = q - *start;
    c->p = q + 1;
    return 1;
}

/* A string with no escape, no control character and no byte outside ASCII: its content's start and length. */
static int plain_string(Cursor *c, const char **start, Py_ssize_t *length) {
    if (!raw_string(c, start, length)) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < *length; i++) {
        if (!IS_PLAIN[(unsigned char)(*start)[i]]) {
            return 0;
        }
    }
    return 1;
}

static int skip_value(Cursor *c, int depth);

static int skip_number(Cursor *c) {
    const char *p = c->p;
    if (p < c->end && *p == '-') {
        p++;
    }
    if (p >= c->end) {
        return 0;
    }
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < c->end && *p >= '0' && *p <= '9') {
            p++;
        }
    } else {
        return 0;
    }
    if (p < c->end && *p == '.') {
        p++;
        if (p >= c->end || *p < '0' || *p > '9') {
            return 0;
        }
        while (p < c->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    if (p < c->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < c->end && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p >= c->end || *p < '0' || *p > '9') {
            return 0;
        }
        while (p < c->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    c->p = p;
    return 1;
}

static int skip_literal(Cursor *c, const char *word, Py_ssize_t length) {
    if (c->end - c->p < length || memcmp(c->p, word, (size_t)length) != 0) {
        return 0;
    }
    c->p += length;
    return 1;
}

/* Any JSON value, checked and passed over (a field the audit does not keep). */
static int skip_value(Cursor *c, int depth) {
    const char *s;
    Py_ssize_t n;
    if (depth > MAX_DEPTH) {
        return 0;
    }
    skip_space(c);
    if (c->p >= c->end) {
        return 0;
    }
    switch (*c->p) {
    case '"':
        return plain_string(c, &s, &n);
    case '{':
        c->p++;
        if (take(c, '}')) {
            return 1;
        }
        do {
            if (!plain_string(c, &s, &n) || !take(c, ':') || !skip_value(c, depth + 1)) {
                return 0;
            }
        } while (take(c, ','));
        return take(c, '}');
    case '[':
        c->p++;
        if (take(c, ']')) {
            return 1;
        }
        do {
            if (!skip_value(c, depth + 1)) {
                return 0;
            }
        } while (take(c, ','));
        return take(c, ']');
    case 't':
        return skip_literal(c, "true", 4);
    case 'f':
        return skip_literal(c, "false", 5);
    case 'n':
        return skip_literal(c, "null", 4);
    default:
        return skip_number(c);
    }
}

/* "0x" and hex digits only (either case, as the Python check allows). */
static inline int is_0x_hex(const char *s, Py_ssize_t n) {
    if (n < 2 || s[0] != '0' || s[1] != 'x') {
        return 0;
    }
    for (Py_ssize_t i = 2; i < n; i++) {
        if (!IS_HEX[(unsigned char)s[i]]) {
            return 0;
        }
    }
    return 1;
}

/* The last value made for a column: a repeat of it is the same object. */
typedef struct {
    const char *start;
    Py_ssize_t length;
    PyObject *value; /* borrowed: the column list holds it */
} Last;

static PyObject *ascii_str(Last *last, const char *s, Py_ssize_t n) {
    if (last->value != NULL && last->length == n && memcmp(last->start, s, (size_t)n) == 0) {
        Py_INCREF(last->value);
        return last->value;
    }
    PyObject *out = PyUnicode_New(n, 127);
    if (out == NULL) {
        return NULL;
    }
    memcpy(PyUnicode_1BYTE_DATA(out), s, (size_t)n);
    last->start = s;
    last->length = n;
    last->value = out;
    return out;
}

enum { ADDRESS, TOPICS, DATA, BLOCK_NUMBER, LOG_INDEX, TX_HASH, BLOCK_HASH, FIELDS };

static const char *const FIELD_NAMES[FIELDS] = {"address", "topics", "data", "blockNumber", "logIndex",
                                                "transactionHash", "blockHash"};

static int field_of(const char *key, Py_ssize_t n) {
    for (int i = 0; i < FIELDS; i++) {
        if ((Py_ssize_t)strlen(FIELD_NAMES[i]) == n && memcmp(FIELD_NAMES[i], key, (size_t)n) == 0) {
            return i;
        }
    }
    return -1;
}

/* Where one log's kept fields lie in the body: the first pass finds and checks them with the interpreter lock
 * released (other threads run meanwhile); the second makes the objects. */
typedef struct {
    const char *field[FIELDS]; /* start of each field's value (TOPICS unused) */
    unsigned int length[FIELDS];
    unsigned char topics;
    const char *topic[MAX_TOPICS]; /* each 66 characters */
} Entry;

typedef struct {
    Entry *entries;
    Py_ssize_t count, capacity;
    long long low, high;
    long long id;
    int have_id;
} Reader;

/* A quantity's value (at most 15 hex digits: any block number or log index there is), or -1. */
static long long quantity(const char *s, Py_ssize_t n) {
    if (n < 3 || n > 17 || !is_0x_hex(s, n)) {
        return -1;
    }
    long long value = 0;
    for (Py_ssize_t i = 2; i < n; i++) {
        unsigned char u = (unsigned char)s[i];
        int digit = u <= '9' ? u - '0' : (u | 0x20) - 'a' + 10;
        value = value * 16 + digit;
    }
    return value;
}

static int read_topics(Entry *e, Cursor *c) {
    const char *s;
    Py_ssize_t n;
    e->topics = 0;
    if (!take(c, '[')) {
        return 0;
    }
    if (take(c, ']')) {
        return 1;
    }
    do {
        if (e->topics == MAX_TOPICS || !raw_string(c, &s, &n) || n != 66 || !is_0x_hex(s, n)) {
            return 0;
        }
        e->topic[e->topics++] = s;
    } while (take(c, ','));
    return take(c, ']');
}

static int read_log(Reader *r, Cursor *c) {
    int seen = 0;
    const char *key, *s;
    Py_ssize_t key_length, n;
    if (r->count == r->capacity) {
        Py_ssize_t capacity = r->capacity ? 2 * r->capacity : 1024;
        Entry *grown = realloc(r->entries, (size_t)capacity * sizeof(Entry));
        if (grown == NULL) {
            return 0; /* treated as "not judged": the Python path then reads the reply */
        }
        r->entries = grown;
        r->capacity = capacity;
    }
    Entry *e = &r->entries[r->count];
    if (!take(c, '{') || take(c, '}')) {
        return 0;
    }
    do {
        if (!plain_string(c, &key, &key_length) || !take(c, ':')) {
            return 0;
        }
        int field = field_of(key, key_length);
        if (field < 0) {
            if (!skip_value(c, 2)) {
                return 0;
            }
            continue;
        }
        if (seen & (1 << field)) {
            return 0; /* twice in one log: the Python path decides which one counts */
        }
        seen |= 1 << field;
        if (field == TOPICS) {
            if (!read_topics(e, c)) {
                return 0;
            }
            continue;
        }
        if (!raw_string(c, &s, &n) || !is_0x_hex(s, n) || n > 0x7fffffff) { /* hex digits: no escape, all ASCII */
            return 0;
        }
        switch (field) {
        case ADDRESS:
            if (n != 42) {
                return 0;
            }
            break;
        case TX_HASH:
        case BLOCK_HASH:
            if (n != 66) {
                return 0;
            }
            break;
        case DATA:
            if (n % 2 != 0) {
                return 0;
            }
            break;
        case BLOCK_NUMBER: {
            long long block = quantity(s, n);
            if (block < 0 || (r->low >= 0 && block < r->low) || (r->high >= 0 && block > r->high)) {
                return 0;
            }
            break;
        }
        case LOG_INDEX:
            if (quantity(s, n) < 0) {
                return 0;
            }
            break;
        default:
            break;
        }
        e->field[field] = s;
        e->length[field] = (unsigned int)n;
    } while (take(c, ','));
    if (!take(c, '}') || seen != (1 << FIELDS) - 1) {
        return 0;
    }
    r->count++;
    return 1;
}

static int read_reply(Reader *r, Cursor *c) {
    int have_result = 0;
    const char *key;
    Py_ssize_t key_length;
    if (!take(c, '{')) {
        return 0;
    }
    do {
        if (!plain_string(c, &key, &key_length) || !take(c, ':')) {
            return 0;
        }
        if (key_length == 6 && memcmp(key, "result", 6) == 0) {
            if (have_result++ || !take(c, '[')) {
                return 0;
            }
            if (!take(c, ']')) {
                do {
                    if (!read_log(r, c)) {
                        return 0;
                    }
                } while (take(c, ','));
                if (!take(c, ']')) {
                    return 0;
                }
            }
        } else if (key_length == 2 && memcmp(key, "id", 2) == 0) {
            skip_space(c);
            const char *digits = c->p;
            if (r->have_id++ || !skip_number(c) || c->p - digits > 15) {
                return 0;
            }
            r->id = 0;
            for (const char *p = digits; p < c->p; p++) {
                if (*p < '0' || *p > '9') {
                    return 0; /* a sign, a fraction or an exponent: not an id this reader hands back */
                }
                r->id = r->id * 10 + (*p - '0');
            }
        } else if (key_length == 5 && memcmp(key, "error", 5) == 0) {
            return 0;
        } else if (!skip_value(c, 1)) {
            return 0;
        }
    } while (take(c, ','));
    if (!take(c, '}') || !have_result) {
        return 0;
    }
    skip_space(c);
    return c->p == c->end;
}

/* The second pass: one list per field from the entries the first pass checked. */
static int make_columns(Reader *r, PyObject *columns[FIELDS]) {
    Last last[FIELDS], topic_last[MAX_TOPICS];
    memset(last, 0, sizeof last);
    memset(topic_last, 0, sizeof topic_last);
    for (int f = 0; f < FIELDS; f++) {
        if ((columns[f] = PyList_New(r->count)) == NULL) {
            return 0;
        }
    }
    for (Py_ssize_t i = 0; i < r->count; i++) {
        Entry *e = &r->entries[i];
        for (int f = 0; f < FIELDS; f++) {
            PyObject *value;
            if (f == TOPICS) {
                value = PyTuple_New(e->topics);
                for (int t = 0; value != NULL && t < e->topics; t++) {
                    PyObject *topic = ascii_str(&topic_last[t], e->topic[t], 66);
                    if (topic == NULL) {
                        Py_CLEAR(value);
                    } else {
                        PyTuple_SET_ITEM(value, t, topic);
                    }
                }
            } else {
                value = ascii_str(&last[f], e->field[f], e->length[f]);
            }
            if (value == NULL) {
                return 0;
            }
            PyList_SET_ITEM(columns[f], i, value);
        }
    }
    return 1;
}

static PyObject *parse_logs(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer body;
    Reader r;
    memset(&r, 0, sizeof r);
    if (!PyArg_ParseTuple(args, "y*LL", &body, &r.low, &r.high)) {
        return NULL;
    }
    PyObject *columns[FIELDS] = {NULL};
    PyObject *out = NULL;
    Cursor c = {(const char *)body.buf, (const char *)body.buf + body.len};
    int ok;
    Py_BEGIN_ALLOW_THREADS /* the body is immutable bytes, held by the buffer: nothing else touches it */
    ok = read_reply(&r, &c);
    Py_END_ALLOW_THREADS
    if (!ok) {
        out = Py_NewRef(Py_None);
        goto done;
    }
    if (!make_columns(&r, columns)) {
        goto done; /* out of memory: raised, not "not judged" */
    }
    PyObject *id_value = r.have_id ? PyLong_FromLongLong(r.id) : Py_NewRef(Py_None); /* no id: the caller says so */
    if (id_value == NULL) {
        goto done;
    }
    out = Py_BuildValue("(NOOOOOOO)", id_value, columns[ADDRESS], columns[TOPICS], columns[DATA],
                        columns[BLOCK_NUMBER], columns[LOG_INDEX], columns[TX_HASH], columns[BLOCK_HASH]);
done:
    for (int f = 0; f < FIELDS; f++) {
        Py_XDECREF(columns[f]);
    }
    free(r.entries);
    PyBuffer_Release(&body);
    return out;
}

/* One 32-byte word of every log, read from its 64 hex digits at `start` in each str of `column` (or in item
 * `item` of each tuple, when `item` >= 0): kind 0 the address in its last 40 digits, as "0x" and lower case; kind 1
 * the word as an unsigned int. What `EventDecoder.decode_columns` reads for a field that is one static word. A
 * value too short or not hex digits raises ValueError (the transport checked them: that is a caller's bug). */
static PyObject *words(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *column;
    Py_ssize_t item, start;
    int kind;
    if (!PyArg_ParseTuple(args, "O!nni", &PyList_Type, &column, &item, &start, &kind)) {
        return NULL;
    }
    if (start < 0 || kind < 0 || kind > 1) {
        PyErr_SetString(PyExc_ValueError, "words: start must be >= 0 and kind 0 (address) or 1 (uint)");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(column);
    PyObject *out = PyList_New(count);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *text = PyList_GET_ITEM(column, i);
        if (item >= 0) {
            if (!PyTuple_Check(text) || PyTuple_GET_SIZE(text) <= item) {
                PyErr_SetString(PyExc_ValueError, "words: a log without that topic");
                goto fail;
            }
            text = PyTuple_GET_ITEM(text, item);
        }
        if (!PyUnicode_Check(text) || !PyUnicode_IS_ASCII(text) || PyUnicode_GET_LENGTH(text) < start + 64) {
            PyErr_SetString(PyExc_ValueError, "words: a value shorter than its word");
            goto fail;
        }
        const char *digits = (const char *)PyUnicode_1BYTE_DATA(text) + start;
        for (int d = 0; d < 64; d++) {
            if (!IS_HEX[(unsigned char)digits[d]]) {
                PyErr_SetString(PyExc_ValueError, "words: not hex digits");
                goto fail;
            }
        }
        PyObject *value;
        if (kind == 0) {
            value = PyUnicode_New(42, 127);
            if (value != NULL) {
                Py_UCS1 *chars = PyUnicode_1BYTE_DATA(value);
                chars[0] = '0';
                chars[1] = 'x';
                for (int d = 0; d < 40; d++) {
                    unsigned char u = (unsigned char)digits[24 + d];
                    chars[2 + d] = (u >= 'A' && u <= 'F') ? (Py_UCS1)(u | 0x20) : u;
                }
            }
        } else {
            int high = 0; /* the first 48 digits: zero for any value below 2**64, most amounts */
            while (high < 48 && digits[high] == '0') {
                high++;
            }
            if (high == 48) {
                unsigned long long low = 0;
                for (int d = 48; d < 64; d++) {
                    unsigned char u = (unsigned char)digits[d];
                    low = low * 16 + (unsigned long long)(u <= '9' ? u - '0' : (u | 0x20) - 'a' + 10);
                }
                value = PyLong_FromUnsignedLongLong(low);
            } else {
                char buffer[65];
                memcpy(buffer, digits, 64);
                buffer[64] = 0;
                value = PyLong_FromString(buffer, NULL, 16);
            }
        }
        if (value == NULL) {
            goto fail;
        }
        PyList_SET_ITEM(out, i, value);
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef METHODS[] = {
    {"parse_logs", parse_logs, METH_VARARGS,
     "parse_logs(body, low, high): an eth_getLogs reply's columns, checked, or None (see the module's source)."},
    {"words", words, METH_VARARGS,
     "words(column, item, start, kind): one word of every log, as addresses (kind 0) or uints (kind 1)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_logwire", "The compiled reader of eth_getLogs replies.",
                                    -1, METHODS, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__logwire(void) {
    const char *digits = "0123456789abcdefABCDEF";
    for (int u = 0x20; u < 0x80; u++) {
        IS_PLAIN[u] = u != '\\';
    }
    for (const char *d = digits; *d; d++) {
        IS_HEX[(unsigned char)*d] = 1;
    }
    return PyModule_Create(&MODULE);
}
