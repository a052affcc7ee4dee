/*
 * Names and close codes of the error registry (docs/protocol.md §11). Optional: link it for logs; the
 * device client does not need it (it keeps numeric codes), so a firmware that never prints a name does not
 * carry the text. test/test_codec.c checks this table against device-sdk/src/codec/errors.ts.
 */
#include "tendril_codec.h"

typedef struct {
    uint8_t wire;
    uint8_t close; /* close code - 1000; 0 = none */
    const char *name;
} entry;

static const entry registry[] = {
    {1, 2, "FRAME_TRUNCATED"},   {2, 2, "UNKNOWN_FRAME_TYPE"},  {3, 2, "TRAILING_BYTES"},
    {4, 2, "VARINT_OVERFLOW"},   {5, 2, "INVALID_UTF8"},        {6, 2, "STRING_TOO_LONG"},
    {7, 2, "INVALID_VALUE_TYPE"},{8, 2, "TOO_MANY_METRICS"},    {9, 2, "BATCH_TOO_LARGE"},
    {10, 2, "EMPTY_READING"},    {11, 2, "INVALID_FIELD"},      {12, 9, "FRAME_TOO_LARGE"},
    {13, 3, "TEXT_FRAME"},       {14, 2, "UNEXPECTED_FRAME"},   {20, 8, "AUTH_FAILED"},
    {21, 8, "REPLACED"},         {22, 8, "HELLO_TIMEOUT"},      {23, 0, "HEARTBEAT_LOST"},
    {24, 1, "SHUTTING_DOWN"},    {25, 11, "INTERNAL_ERROR"},    {26, 13, "TRY_AGAIN_LATER"},
    {27, 8, "DEVICE_DISABLED"},  {28, 13, "AUTH_THROTTLED"},    {29, 8, "TOO_MANY_PINGS"},
    {60, 0, "SLOW_CONSUMER"},    {30, 0, "UNKNOWN_ALIAS"},      {31, 0, "TYPE_MISMATCH"},
    {32, 0, "OUT_OF_RANGE"},     {33, 0, "NOT_FINITE"},         {34, 0, "TIMESTAMP_OUT_OF_RANGE"},
    {35, 0, "DUPLICATE_ALIAS"},  {40, 0, "RATE_LIMITED"},       {41, 0, "STORE_BUSY"},
    {50, 0, "UNKNOWN_COMMAND_ID"},
};

static const entry *find(int code)
{
    size_t i;
    for (i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (registry[i].wire == code) return &registry[i];
    return 0;
}

const char *td_err_name(int code)
{
    const entry *e = find(code);
    if (e) return e->name;
    switch (code) {
    case TD_OK: return "OK";
    case TD_E_ARG: return "E_ARG";
    case TD_E_NOSPACE: return "E_NOSPACE";
    case TD_E_IO: return "E_IO";
    case TD_E_AGAIN: return "E_AGAIN";
    case TD_E_HANDSHAKE: return "E_HANDSHAKE";
    case TD_E_CLOSED: return "E_CLOSED";
    case TD_E_WS: return "E_WS";
    default: return "UNKNOWN";
    }
}

int td_err_close_code(int code)
{
    const entry *e = find(code);
    return e && e->close ? 1000 + e->close : 0;
}
