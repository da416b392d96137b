/* rng: counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
 *
 * A stream is keyed by (seed, purpose, stream): the seed is the deck's run.seed, the purpose says
 * what the numbers are for (weight init, data order, sampling, ...) and the stream tells apart the
 * users of one purpose (a rank, or better a data item, so that results do not depend on which
 * rank handled the item). The i-th number of a stream is a pure function of the key and i, so the
 * whole state is four integers: checkpointing and restoring it continues the same sequence.
 * Not cryptographic. No global state. */
#ifndef RLAIF_RNG_H
#define RLAIF_RNG_H

#include <stdint.h>

enum rng_purpose {
    RNG_INIT = 1,   /* weight initialisation */
    RNG_DATA = 2,   /* data order, splits, shuffles */
    RNG_SAMPLE = 3, /* token sampling in generation */
    RNG_TASK = 4,   /* the built-in task's generator */
    RNG_JUDGE = 5,  /* judge-side choices: principles, rationale sampling */
    RNG_TEST = 15   /* tests */
};

/* Combines a purpose with a sub-purpose (an epoch, a stage index) into one 32-bit purpose. */
static inline uint32_t rng_purpose(uint32_t base, uint32_t sub) {
    return (base << 24) ^ (sub & 0xffffffu);
}

typedef struct rng {
    uint64_t seed;
    uint32_t purpose;
    uint32_t stream;
    uint64_t pos; /* 32-bit draws consumed so far */
    /* derived cache, not state: the block that holds draw pos */
    uint64_t cache_block;
    uint32_t cache[4];
    int cache_valid;
} rng;

#define RNG_STATE_WORDS 4

void rng_init(rng *r, uint64_t seed, uint32_t purpose, uint32_t stream);
uint32_t rng_u32(rng *r);
uint64_t rng_u64(rng *r);
/* Uniform integer in [0, n), unbiased; n > 0. */
uint32_t rng_below(rng *r, uint32_t n);
/* Uniform in [0, 1) with 24 (float) or 53 (double) random bits. */
float rng_uniform(rng *r);
double rng_uniform_double(rng *r);
/* Standard normal (Box-Muller; consumes four 32-bit draws). */
float rng_normal(rng *r);
/* Fisher-Yates shuffle of n ints. */
void rng_shuffle_int(rng *r, int *a, int n);

/* The whole state as four integers (seed, purpose, stream, pos), for checkpoints. */
void rng_state_get(const rng *r, uint64_t out[RNG_STATE_WORDS]);
void rng_state_set(rng *r, const uint64_t in[RNG_STATE_WORDS]);

/* The bare block function: out = Philox4x32-10(ctr, key). */
void rng_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

#endif
