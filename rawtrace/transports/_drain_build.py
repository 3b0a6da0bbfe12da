"""Builds rawtrace.transports._perf_drain, the ring drains in C (cffi API mode, out of line, abi3).

setup.py names this file in `cffi_modules`, so `pip install` compiles it; without a compiler the
build leaves it out (the extension is optional) and rawtrace.transports.drain falls back to Python.

Both drains follow the rules of the pure-Python parsers (perf_ring.parse_records and
ringbuf_ring.parse_records) exactly; the tests run both on the same rings and compare bytes.
Their memory bounds rest on one argument, checked on entry: every payload lies inside the span
between tail and head, which is at most `size` bytes, and every record is at least 8 bytes long,
so `out` (size bytes) and `sizes` (size / 8 entries) can never overflow.
"""

from __future__ import annotations

import cffi

CDEF = """
struct rt_batch {
    uint64_t records;   /* payloads written to out, their sizes to sizes[] */
    uint64_t used;      /* bytes of out they fill, back to back */
    uint64_t lost;      /* what PERF_RECORD_LOST records counted */
    uint64_t malformed; /* bytes skipped because a header or the positions made no sense */
};

int rt_perf_drain(uint8_t *page, const uint8_t *data, uint64_t size,
                  uint8_t *out, uint64_t out_size, uint32_t *sizes, uint64_t max_records,
                  struct rt_batch *batch);

int rt_ringbuf_drain(uint8_t *consumer, const uint8_t *producer, const uint8_t *data,
                     uint64_t size, uint8_t *out, uint64_t out_size, uint32_t *sizes,
                     uint64_t max_records, struct rt_batch *batch);
"""

C_SOURCE = r"""
#include <stdint.h>
#include <string.h>

struct rt_batch {
    uint64_t records;
    uint64_t used;
    uint64_t lost;
    uint64_t malformed;
};

/* struct perf_event_mmap_page: where data_head and data_tail sit in the metadata page */
#define PERF_DATA_HEAD 1024
#define PERF_DATA_TAIL 1032
#define PERF_RECORD_LOST 2
#define PERF_RECORD_SAMPLE 9
#define PERF_HEADER_SIZE 8     /* struct perf_event_header: u32 type, u16 misc, u16 size */
#define PERF_RAW_SAMPLE_MIN 12 /* the header and PERF_SAMPLE_RAW's u32 size */
#define PERF_LOST_MIN 24       /* the header, then u64 id, u64 lost */

#define RINGBUF_BUSY (1u << 31)    /* reserved, not yet committed */
#define RINGBUF_DISCARD (1u << 30) /* committed as discarded: skip it */
#define RINGBUF_HEADER_SIZE 8      /* u32 len (with the two bits above), u32 pg_off */

/* What the bounds argument (see the Python docstring) needs of the ring and the buffers. */
static int usable(uint64_t size, uint64_t out_size, uint64_t max_records)
{
    return size != 0 && (size & (size - 1)) == 0 && out_size >= size
        && max_records >= size / 8;
}

/* len bytes (len <= size) from ring position pos, joined across the end of the data area */
static void ring_read(void *dst, const uint8_t *data, uint64_t size, uint64_t pos, uint64_t len)
{
    uint64_t start = pos & (size - 1);
    uint64_t first = size - start;
    if (len <= first) {
        memcpy(dst, data + start, len);
    } else {
        memcpy(dst, data + start, first);
        memcpy((uint8_t *)dst + first, data, len - first);
    }
}

int rt_perf_drain(uint8_t *page, const uint8_t *data, uint64_t size,
                  uint8_t *out, uint64_t out_size, uint32_t *sizes, uint64_t max_records,
                  struct rt_batch *batch)
{
    uint64_t *head_p = (uint64_t *)(page + PERF_DATA_HEAD);
    uint64_t *tail_p = (uint64_t *)(page + PERF_DATA_TAIL);
    uint64_t head, tail, pos;

    memset(batch, 0, sizeof *batch);
    if (!usable(size, out_size, max_records))
        return -1;
    /* pairs with the kernel's smp_store_release of data_head: the records are all there */
    head = __atomic_load_n(head_p, __ATOMIC_ACQUIRE);
    tail = __atomic_load_n(tail_p, __ATOMIC_RELAXED); /* only this reader writes it */
    if (head == tail)
        return 0;
    if (head - tail > size) {
        /* nonsense positions: give the whole ring back rather than read garbage */
        batch->malformed = size;
        __atomic_store_n(tail_p, head, __ATOMIC_RELEASE);
        return 0;
    }
    pos = tail;
    while (head - pos >= PERF_HEADER_SIZE) {
        uint8_t header[PERF_HEADER_SIZE];
        uint32_t type;
        uint16_t record_size;
        uint64_t left = head - pos;

        ring_read(header, data, size, pos, sizeof header);
        memcpy(&type, header, 4);
        memcpy(&record_size, header + 6, 2);
        if (record_size < PERF_HEADER_SIZE || record_size > left) {
            batch->malformed += left;
            pos = head;
            break;
        }
        if (type == PERF_RECORD_SAMPLE && record_size >= PERF_RAW_SAMPLE_MIN) {
            uint32_t raw_size;
            ring_read(&raw_size, data, size, pos + PERF_HEADER_SIZE, 4);
            if ((uint64_t)raw_size + PERF_RAW_SAMPLE_MIN > record_size) {
                batch->malformed += record_size;
            } else {
                ring_read(out + batch->used, data, size, pos + PERF_RAW_SAMPLE_MIN, raw_size);
                sizes[batch->records++] = raw_size;
                batch->used += raw_size;
            }
        } else if (type == PERF_RECORD_LOST && record_size >= PERF_LOST_MIN) {
            uint64_t lost;
            ring_read(&lost, data, size, pos + 16, 8);
            batch->lost += lost;
        }
        pos += record_size;
    }
    batch->malformed += head - pos; /* a tail too short to hold a header */
    /* once per batch, after every read of the records it frees */
    __atomic_store_n(tail_p, head, __ATOMIC_RELEASE);
    return 0;
}

int rt_ringbuf_drain(uint8_t *consumer, const uint8_t *producer, const uint8_t *data,
                     uint64_t size, uint8_t *out, uint64_t out_size, uint32_t *sizes,
                     uint64_t max_records, struct rt_batch *batch)
{
    uint64_t *consumer_p = (uint64_t *)consumer;
    uint64_t cons, prod, pos;

    memset(batch, 0, sizeof *batch);
    if (!usable(size, out_size, max_records))
        return -1;
    cons = __atomic_load_n(consumer_p, __ATOMIC_RELAXED); /* only this reader writes it */
    prod = __atomic_load_n((const uint64_t *)producer, __ATOMIC_ACQUIRE);
    if (prod == cons)
        return 0;
    if (prod - cons > size) {
        batch->malformed = size;
        __atomic_store_n(consumer_p, prod, __ATOMIC_RELEASE);
        return 0;
    }
    pos = cons;
    while (pos != prod) {
        uint64_t left = prod - pos, payload, total;
        const uint8_t *record;
        uint32_t len;

        /* the kernel keeps records 8-byte aligned: anything else is garbage (and an
           unaligned atomic load is undefined) */
        if (left < RINGBUF_HEADER_SIZE || (pos & 7) != 0) {
            batch->malformed += left;
            pos = prod;
            break;
        }
        record = data + (pos & (size - 1));
        /* pairs with the kernel's release when it commits: clears BUSY after the data */
        len = __atomic_load_n((const uint32_t *)record, __ATOMIC_ACQUIRE);
        if (len & RINGBUF_BUSY)
            break; /* not committed yet: the records after it wait for the next drain */
        payload = len & ~(RINGBUF_BUSY | RINGBUF_DISCARD);
        total = (payload + RINGBUF_HEADER_SIZE + 7) & ~(uint64_t)7;
        if (total > left) {
            batch->malformed += left;
            pos = prod;
            break;
        }
        /* the data is mapped twice in a row, so a record across the end reads straight on */
        if (!(len & RINGBUF_DISCARD)) {
            memcpy(out + batch->used, record + RINGBUF_HEADER_SIZE, payload);
            sizes[batch->records++] = (uint32_t)payload;
            batch->used += payload;
        }
        pos += total;
    }
    if (pos != cons)
        __atomic_store_n(consumer_p, pos, __ATOMIC_RELEASE);
    return 0;
}
"""

ffibuilder = cffi.FFI()
ffibuilder.cdef(CDEF)
# optional: a machine without a compiler still installs rawtrace, with the Python drains
ffibuilder.set_source(
    "rawtrace.transports._perf_drain",
    C_SOURCE,
    py_limited_api=True,
    optional=True,
    extra_compile_args=["-O2"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
