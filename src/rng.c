/* rng: Philox4x32-10 counter-based generator; see include/rng.h.
 * Counter layout: (block lo, block hi, purpose, stream); key: the 64-bit seed. */
#include "rng.h"

#include <math.h>

static inline void mulhilo32(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void rng_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo32(0xD2511F53u, c0, &hi0, &lo0);
        mulhilo32(0xCD9E8D57u, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

void rng_init(rng *r, uint64_t seed, uint32_t purpose, uint32_t stream) {
    r->seed = seed;
    r->purpose = purpose;
    r->stream = stream;
    r->pos = 0;
    r->cache_valid = 0;
}

uint32_t rng_u32(rng *r) {
    uint64_t block = r->pos >> 2;
    if (!r->cache_valid || r->cache_block != block) {
        uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), r->purpose, r->stream};
        uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
        rng_philox4x32_10(ctr, key, r->cache);
        r->cache_block = block;
        r->cache_valid = 1;
    }
    return r->cache[r->pos++ & 3];
}

uint64_t rng_u64(rng *r) {
    uint64_t lo = rng_u32(r);
    return lo | ((uint64_t)rng_u32(r) << 32);
}

uint32_t rng_below(rng *r, uint32_t n) {
    /* Lemire's multiply-and-reject: unbiased without a division in the common case */
    uint64_t m = (uint64_t)rng_u32(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)rng_u32(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

float rng_uniform(rng *r) {
    return (float)(rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

double rng_uniform_double(rng *r) {
    return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

float rng_normal(rng *r) {
    double u1 = 1.0 - rng_uniform_double(r); /* (0, 1] so the log is finite */
    double u2 = rng_uniform_double(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

void rng_shuffle_int(rng *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(r, (uint32_t)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

void rng_state_get(const rng *r, uint64_t out[RNG_STATE_WORDS]) {
    out[0] = r->seed;
    out[1] = r->purpose;
    out[2] = r->stream;
    out[3] = r->pos;
}

void rng_state_set(rng *r, const uint64_t in[RNG_STATE_WORDS]) {
    rng_init(r, in[0], (uint32_t)in[1], (uint32_t)in[2]);
    r->pos = in[3];
}
