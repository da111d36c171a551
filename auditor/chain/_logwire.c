/* The optional compiled reader of eth_getLogs replies (auditor.chain._logwire).
 *
 * `parse_logs(body, low, high)` reads a JSON-RPC reply whose result is a list of logs straight from the body
 * bytes, checking every kept field as `auditor.chain.rpc` does in Python: address "0x" and 40 hex digits, topics
 * and hashes "0x" and 64, data "0x" and whole bytes, block number and log index "0x" and at least one digit, every
 * block inside [low, high] (-1: unbounded). It returns (id, window): id None when the reply has none; the window
 * a `Window`, whose columns (in the order address, topics, data, blockNumber, logIndex, transactionHash,
 * blockHash; topics a tuple of str per log, every value a str exactly as the node spelled it) are made when first
 * asked for. It returns None for anything else: an error reply, a field missing, twice or malformed, a string
 * with an escape or a byte outside ASCII, any JSON it does not read plainly. None means "not judged here": the
 * caller then reads the body the Python way, which accepts or names what is wrong. This reader therefore never
 * accepts what the Python path rejects (tests/test_logwire.py checks it against that path on generated and
 * mutated replies).
 *
 * The checking pass runs with the interpreter lock released, so the client's other threads (the consumer of the
 * last window, the senders of the next) run meanwhile; objects are made after, only for what is asked. A value
 * equal to the previous log's (one contract, a block's hash, a transaction's hash, an event's topic) is the same
 * str object. `Window.words` reads one static word of every log (an address or a uint) straight from the body,
 * with no str made for its topics or data. Nothing here talks to a node.
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
static const Py_ssize_t FIELD_LENGTHS[FIELDS] = {7, 6, 4, 11, 8, 15, 9}; /* strlen of each, once per key saved */

static int field_of(const char *key, Py_ssize_t n) {
    for (int i = 0; i < FIELDS; i++) {
        if (FIELD_LENGTHS[i] == n && memcmp(FIELD_NAMES[i], key, (size_t)n) == 0) {
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

/* The second pass, for one field when first asked for: its list from the entries the first pass checked. */
static PyObject *make_column(const Entry *entries, Py_ssize_t count, int f) {
    Last last, topic_last[MAX_TOPICS];
    memset(&last, 0, sizeof last);
    memset(topic_last, 0, sizeof topic_last);
    PyObject *column = PyList_New(count);
    if (column == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        const Entry *e = &entries[i];
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
            value = ascii_str(&last, e->field[f], e->length[f]);
        }
        if (value == NULL) {
            Py_DECREF(column);
            return NULL;
        }
        PyList_SET_ITEM(column, i, value);
    }
    return column;
}

/* One 32-byte word from its 64 hex digits: kind 0 the address in its last 40 digits, as "0x" and lower case;
 * kind 1 the word as an unsigned int. NULL with ValueError when they are not hex digits. */
static PyObject *word_value(const char *digits, int kind) {
    for (int d = 0; d < 64; d++) {
        if (!IS_HEX[(unsigned char)digits[d]]) {
            PyErr_SetString(PyExc_ValueError, "words: not hex digits");
            return NULL;
        }
    }
    if (kind == 0) {
        PyObject *value = PyUnicode_New(42, 127);
        if (value != NULL) {
            Py_UCS1 *chars = PyUnicode_1BYTE_DATA(value);
            chars[0] = '0';
            chars[1] = 'x';
            for (int d = 0; d < 40; d++) {
                unsigned char u = (unsigned char)digits[24 + d];
                chars[2 + d] = (u >= 'A' && u <= 'F') ? (Py_UCS1)(u | 0x20) : u;
            }
        }
        return value;
    }
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
        return PyLong_FromUnsignedLongLong(low);
    }
    char buffer[65];
    memcpy(buffer, digits, 64);
    buffer[64] = 0;
    return PyLong_FromString(buffer, NULL, 16);
}

static int check_kind(Py_ssize_t start, int kind) {
    if (start < 0 || start > PY_SSIZE_T_MAX - 64 || kind < 0 || kind > 1) {
        PyErr_SetString(PyExc_ValueError, "words: start must be >= 0 and kind 0 (address) or 1 (uint)");
        return 0;
    }
    return 1;
}

/* A checked log window: the reply body and where each log's fields lie in it. Columns are made when first asked
 * for (`column`), and a field that is one static word can be read for every log straight from the body (`words`),
 * with no str made per log for its topics or data. */
typedef struct {
    PyObject_HEAD
    PyObject *body; /* the bytes the entries point into */
    Entry *entries;
    Py_ssize_t count;
    PyObject *columns[FIELDS];
} Window;

static void window_dealloc(Window *w) {
    for (int f = 0; f < FIELDS; f++) {
        Py_XDECREF(w->columns[f]);
    }
    Py_XDECREF(w->body);
    free(w->entries);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static Py_ssize_t window_length(Window *w) {
    return w->count;
}

static PyObject *window_column(Window *w, PyObject *arg) {
    long f = PyLong_AsLong(arg);
    if (f == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (f < 0 || f >= FIELDS) {
        PyErr_SetString(PyExc_ValueError, "column: no such field");
        return NULL;
    }
    if (w->columns[f] == NULL && (w->columns[f] = make_column(w->entries, w->count, (int)f)) == NULL) {
        return NULL;
    }
    return Py_NewRef(w->columns[f]);
}

/* words(item, start, kind): item >= 0 that topic of every log, -1 its data; start the word's first hex digit. */
static PyObject *window_words(Window *w, PyObject *args) {
    Py_ssize_t item, start;
    int kind;
    if (!PyArg_ParseTuple(args, "nni", &item, &start, &kind) || !check_kind(start, kind)) {
        return NULL;
    }
    PyObject *out = PyList_New(w->count);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < w->count; i++) {
        const Entry *e = &w->entries[i];
        const char *text;
        Py_ssize_t length;
        if (item >= 0) {
            if (item >= e->topics) {
                PyErr_SetString(PyExc_ValueError, "words: a log without that topic");
                goto fail;
            }
            text = e->topic[item];
            length = 66;
        } else {
            text = e->field[DATA];
            length = e->length[DATA];
        }
        if (length < start + 64) {
            PyErr_SetString(PyExc_ValueError, "words: a value shorter than its word");
            goto fail;
        }
        PyObject *value = word_value(text + start, kind);
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

/* uniform(topics, topic0, data_chars): whether every log has exactly `topics` topics, the first of them spelled
 * exactly `topic0`, and data of at least `data_chars` characters (one event's logs, each long enough to decode). */
static PyObject *window_uniform(Window *w, PyObject *args) {
    int topics;
    const char *topic0;
    Py_ssize_t topic0_length, data_chars;
    if (!PyArg_ParseTuple(args, "is#n", &topics, &topic0, &topic0_length, &data_chars)) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < w->count; i++) {
        const Entry *e = &w->entries[i];
        if (e->topics != topics || (Py_ssize_t)e->length[DATA] < data_chars ||
            (topics > 0 && (topic0_length != 66 || memcmp(e->topic[0], topic0, 66) != 0))) {
            Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

static PyMethodDef WINDOW_METHODS[] = {
    {"column", (PyCFunction)window_column, METH_O, "column(field): the field's value for every log (0-6)."},
    {"words", (PyCFunction)window_words, METH_VARARGS, "words(item, start, kind): one word of every log."},
    {"uniform", (PyCFunction)window_uniform, METH_VARARGS, "uniform(topics, topic0, data_chars): all logs of one event, decodable."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods WINDOW_SEQUENCE = {.sq_length = (lenfunc)window_length};

static PyTypeObject WindowType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "auditor.chain._logwire.Window",
    .tp_basicsize = sizeof(Window),
    .tp_dealloc = (destructor)window_dealloc,
    .tp_as_sequence = &WINDOW_SEQUENCE,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A checked eth_getLogs window (made by parse_logs only).",
    .tp_methods = WINDOW_METHODS,
};

static PyObject *parse_logs(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *body;
    Reader r;
    memset(&r, 0, sizeof r);
    if (!PyArg_ParseTuple(args, "O!LL", &PyBytes_Type, &body, &r.low, &r.high)) {
        return NULL;
    }
    Cursor c = {PyBytes_AS_STRING(body), PyBytes_AS_STRING(body) + PyBytes_GET_SIZE(body)};
    int ok;
    Py_BEGIN_ALLOW_THREADS /* bytes are immutable and `body` is held by the caller: nothing else touches them */
    ok = read_reply(&r, &c);
    Py_END_ALLOW_THREADS
    if (!ok) {
        free(r.entries);
        Py_RETURN_NONE;
    }
    Window *window = PyObject_New(Window, &WindowType);
    if (window == NULL) {
        free(r.entries);
        return NULL;
    }
    window->body = Py_NewRef(body);
    window->entries = r.entries;
    window->count = r.count;
    memset(window->columns, 0, sizeof window->columns);
    PyObject *id_value = r.have_id ? PyLong_FromLongLong(r.id) : Py_NewRef(Py_None); /* no id: the caller says so */
    if (id_value == NULL) {
        Py_DECREF(window);
        return NULL;
    }
    return Py_BuildValue("(NN)", id_value, (PyObject *)window);
}

static PyMethodDef METHODS[] = {
    {"parse_logs", parse_logs, METH_VARARGS,
     "parse_logs(body, low, high): an eth_getLogs reply's columns, checked, or None (see the module's source)."},
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
    if (PyType_Ready(&WindowType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&MODULE);
    if (module != NULL && PyModule_AddObjectRef(module, "Window", (PyObject *)&WindowType) < 0) {
        Py_CLEAR(module);
    }
    return module;
}
