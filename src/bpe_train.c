/* bpe_train: see include/bpe_train.h.
 *
 * Words are counted once; pair counts live in a hash table and a max-heap with lazy deletion
 * (an entry is current when its count equals the table's); each pair also lists the words it
 * occurs in. Each merge rewrites only those words, subtracting their old pairs and adding their
 * new ones, so the counts stay exact and a merge costs what the words holding the pair cost. */
#include "bpe_train.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_pre.h"

static uint64_t fnv(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ULL;
    return h;
}

/* ---- strings -> index (words, tokens) */
typedef struct strset {
    char **s;
    size_t *len;
    int n, cap;
    int32_t *slot;
    uint32_t mask;
} strset;

static int ss_find(const strset *m, const char *s, size_t n) {
    if (!m->slot) return -1;
    for (uint32_t i = (uint32_t)fnv(s, n) & m->mask;; i = (i + 1) & m->mask) {
        int32_t k = m->slot[i];
        if (k < 0) return -1;
        if (m->len[k] == n && memcmp(m->s[k], s, n) == 0) return k;
    }
}

static void ss_rehash(strset *m, uint32_t cap) {
    free(m->slot);
    m->slot = xmalloc(sizeof(int32_t) * cap);
    m->mask = cap - 1;
    for (uint32_t i = 0; i < cap; i++) m->slot[i] = -1;
    for (int k = 0; k < m->n; k++) {
        uint32_t i = (uint32_t)fnv(m->s[k], m->len[k]) & m->mask;
        while (m->slot[i] >= 0) i = (i + 1) & m->mask;
        m->slot[i] = k;
    }
}

/* Adds s (copied) and returns its index; the caller checked it is absent. */
static int ss_add(strset *m, const char *s, size_t n) {
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 1024;
        m->s = xrealloc(m->s, sizeof(char *) * (size_t)m->cap);
        m->len = xrealloc(m->len, sizeof(size_t) * (size_t)m->cap);
    }
    char *c = xmalloc(n + 1);
    memcpy(c, s, n);
    c[n] = '\0';
    m->s[m->n] = c;
    m->len[m->n] = n;
    m->n++;
    if (!m->slot || (uint32_t)m->n * 2 > m->mask)
        ss_rehash(m, m->slot ? 2 * (m->mask + 1) : 4096);
    else {
        uint32_t i = (uint32_t)fnv(c, n) & m->mask;
        while (m->slot[i] >= 0) i = (i + 1) & m->mask;
        m->slot[i] = m->n - 1;
    }
    return m->n - 1;
}

static void ss_free(strset *m) {
    for (int k = 0; k < m->n; k++) free(m->s[k]);
    free(m->s), free(m->len), free(m->slot);
}

/* ---- pair -> count, and the words it occurs in (a list that may hold words that lost the pair
   since; users check) */
typedef struct ilist {
    int *v;
    int n, cap;
} ilist;

typedef struct pairmap {
    uint64_t *key; /* (a << 32 | b) + 1; 0 = empty */
    int64_t *cnt;
    ilist *words;
    uint8_t *touched; /* changed since the last flush */
    uint32_t mask, n;
    uint64_t *dirty; /* keys of the touched pairs */
    size_t n_dirty, cap_dirty;
} pairmap;

static uint64_t pkey(int a, int b) {
    return ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
}
static uint32_t phash(uint64_t k, uint32_t mask) {
    return (uint32_t)(k * 0x9e3779b97f4a7c15ULL >> 32) & mask;
}

/* Index of the slot of (a, b), created (count 0) when absent. */
static uint32_t pm_slot(pairmap *m, int a, int b) {
    if (!m->key || (m->n + 1) * 2 > m->mask) {
        uint32_t cap = m->key ? 2 * (m->mask + 1) : 1 << 14, omask = m->mask;
        uint64_t *ok = m->key;
        int64_t *oc = m->cnt;
        ilist *ow = m->words;
        uint8_t *ot = m->touched;
        m->key = xcalloc(cap, sizeof(uint64_t));
        m->cnt = xcalloc(cap, sizeof(int64_t));
        m->words = xcalloc(cap, sizeof(ilist));
        m->touched = xcalloc(cap, 1);
        m->mask = cap - 1;
        for (uint32_t i = 0; ok && i <= omask; i++)
            if (ok[i]) {
                uint32_t j = phash(ok[i], m->mask);
                while (m->key[j]) j = (j + 1) & m->mask;
                m->key[j] = ok[i];
                m->cnt[j] = oc[i];
                m->words[j] = ow[i];
                m->touched[j] = ot[i];
            }
        free(ok), free(oc), free(ow), free(ot);
    }
    uint64_t k = pkey(a, b);
    uint32_t j = phash(k, m->mask);
    while (m->key[j] && m->key[j] != k) j = (j + 1) & m->mask;
    if (!m->key[j]) {
        m->key[j] = k;
        m->n++;
    }
    return j;
}

static void pm_free(pairmap *m) {
    for (uint32_t i = 0; m->key && i <= m->mask; i++) free(m->words[i].v);
    free(m->key), free(m->cnt), free(m->words), free(m->touched), free(m->dirty);
}

static void il_push(ilist *l, int x) {
    if (l->n > 0 && l->v[l->n - 1] == x) return;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4;
        l->v = xrealloc(l->v, sizeof(int) * (size_t)l->cap);
    }
    l->v[l->n++] = x;
}

/* ---- max-heap of (count, a, b): higher count first, then smaller a, then smaller b */
typedef struct entry {
    int64_t c;
    int a, b;
} entry;
typedef struct pheap {
    entry *v;
    size_t n, cap;
} pheap;

static int better(const entry *x, const entry *y) {
    if (x->c != y->c) return x->c > y->c;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static void ph_push(pheap *h, entry x) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 4096;
        h->v = xrealloc(h->v, sizeof(entry) * h->cap);
    }
    size_t i = h->n++;
    while (i > 0 && better(&x, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = x;
}

static entry ph_pop(pheap *h) {
    entry top = h->v[0], x = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && better(&h->v[c + 1], &h->v[c])) c++;
        if (!better(&h->v[c], &x)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = x;
    return top;
}

typedef struct word {
    int *sym;
    int n;
    int64_t freq;
} word;

/* Adds `sign` * freq for every adjacent pair of word wi, marking the pairs touched and, when
 * adding, noting the word under the pair. */
static void count_pairs(pairmap *pm, const word *w, int wi, int sign) {
    for (int i = 0; i + 1 < w->n; i++) {
        uint32_t j = pm_slot(pm, w->sym[i], w->sym[i + 1]);
        pm->cnt[j] += sign * w->freq;
        if (sign > 0) il_push(&pm->words[j], wi);
        if (!pm->touched[j]) {
            pm->touched[j] = 1;
            if (pm->n_dirty == pm->cap_dirty) {
                pm->cap_dirty = pm->cap_dirty ? 2 * pm->cap_dirty : 4096;
                pm->dirty = xrealloc(pm->dirty, sizeof(uint64_t) * pm->cap_dirty);
            }
            pm->dirty[pm->n_dirty++] = pm->key[j];
        }
    }
}

/* Queues the current count of every touched pair once (older entries become stale). */
static void flush_touched(pairmap *pm, pheap *h) {
    for (size_t k = 0; k < pm->n_dirty; k++) {
        uint64_t key = pm->dirty[k] - 1;
        int a = (int)(key >> 32), b = (int)(uint32_t)key;
        uint32_t j = pm_slot(pm, a, b);
        pm->touched[j] = 0;
        if (pm->cnt[j] > 0) ph_push(h, (entry){pm->cnt[j], a, b});
    }
    pm->n_dirty = 0;
}

int bpe_train(const char *const *docs, const size_t *lens, int n_docs, const bpe_train_opts *o,
              tokenizer **out, rl_err *e) {
    *out = NULL;
    const char *pre_name = o->pre ? o->pre : "qwen2";
    int ns = o->n_specials, min_freq = o->min_frequency > 0 ? o->min_frequency : 2;
    if (ns < 0 || o->vocab_size < ns + 256)
        return err_set(e, ERR_INPUT,
                       "bpe_train: vocabulary size %d is below the %d special and 256 "
                       "byte tokens",
                       o->vocab_size, ns > 0 ? ns : 0);
    int idx[3] = {o->bos, o->eos, o->pad};
    for (int k = 0; k < 3; k++)
        if (idx[k] >= ns)
            return err_set(e, ERR_INPUT, "bpe_train: special index %d out of range (%d specials)",
                           idx[k], ns);
    tokenizer_pre *pre;
    int rc = tokenizer_pre_create(pre_name, &pre, e);
    if (rc) return rc;

    /* 1. distinct words and their counts */
    strset words = {0};
    int64_t *freq = NULL;
    int freq_cap = 0;
    for (int d = 0; d < n_docs && !rc; d++) {
        size_t len = lens ? lens[d] : strlen(docs[d]), clen, *sp = NULL, n = 0;
        char *clean = tokenizer_utf8_sanitize(docs[d], len, &clen);
        rc = tokenizer_pre_split(pre, clean, clen, &sp, &n, e);
        for (size_t k = 0; k < n && !rc; k++) {
            const char *s = clean + sp[2 * k];
            int wi = ss_find(&words, s, sp[2 * k + 1]);
            if (wi < 0) {
                wi = ss_add(&words, s, sp[2 * k + 1]);
                if (wi >= freq_cap) {
                    freq_cap = freq_cap ? 2 * freq_cap : 1024;
                    freq = xrealloc(freq, sizeof(int64_t) * (size_t)freq_cap);
                }
                freq[wi] = 0;
            }
            freq[wi]++;
        }
        free(sp);
        free(clean);
    }
    tokenizer_pre_free(pre);
    if (rc) {
        ss_free(&words);
        free(freq);
        return rc;
    }

    /* 2. the alphabet: specials, then the 256 bytes as GPT-2 code points */
    strset toks = {0};
    for (int k = 0; k < ns; k++) {
        const char *s = o->specials[k];
        if (!s || !*s || ss_find(&toks, s, strlen(s)) >= 0) {
            ss_free(&words), ss_free(&toks), free(freq);
            return err_set(e, ERR_INPUT, "bpe_train: special token %d is empty or repeated", k);
        }
        ss_add(&toks, s, strlen(s));
    }
    for (int b = 0; b < 256; b++) {
        char u[2];
        int k = tokenizer_byte_to_utf8((uint8_t)b, u);
        if (ss_find(&toks, u, (size_t)k) >= 0) {
            ss_free(&words), ss_free(&toks), free(freq);
            return err_set(e, ERR_INPUT, "bpe_train: a special token is spelled like byte 0x%02x",
                           b);
        }
        ss_add(&toks, u, (size_t)k);
    }
    word *w = xcalloc((size_t)(words.n ? words.n : 1), sizeof(word));
    for (int i = 0; i < words.n; i++) {
        w[i].n = (int)words.len[i];
        w[i].sym = xmalloc(sizeof(int) * (words.len[i] ? words.len[i] : 1));
        w[i].freq = freq[i];
        for (size_t j = 0; j < words.len[i]; j++) w[i].sym[j] = ns + (unsigned char)words.s[i][j];
    }
    free(freq);

    /* 3. merge until the vocabulary is full */
    pairmap pm = {0};
    pheap heap = {0};
    for (int i = 0; i < words.n; i++) count_pairs(&pm, &w[i], i, +1);
    flush_touched(&pm, &heap);
    char **merges = NULL;
    int n_merges = 0, cap_merges = 0;
    int *tmp = NULL;
    size_t tmp_cap = 0;
    while (toks.n < o->vocab_size && heap.n > 0) {
        entry top = ph_pop(&heap);
        uint32_t slot = pm_slot(&pm, top.a, top.b);
        if (top.c != pm.cnt[slot]) continue; /* stale */
        if (top.c < min_freq) break;
        size_t la = toks.len[top.a], lb = toks.len[top.b];
        char *cat = xmalloc(la + lb + 1);
        memcpy(cat, toks.s[top.a], la);
        memcpy(cat + la, toks.s[top.b], lb);
        int id = ss_find(&toks, cat, la + lb);
        if (id < 0) id = ss_add(&toks, cat, la + lb);
        free(cat);
        if (n_merges == cap_merges) {
            cap_merges = cap_merges ? 2 * cap_merges : 1024;
            merges = xrealloc(merges, sizeof(char *) * (size_t)cap_merges);
        }
        merges[n_merges] = xmalloc(la + lb + 2);
        memcpy(merges[n_merges], toks.s[top.a], la);
        merges[n_merges][la] = ' ';
        memcpy(merges[n_merges] + la + 1, toks.s[top.b], lb);
        merges[n_merges][la + lb + 1] = '\0';
        n_merges++;
        /* the words that held the pair; the list is taken over, merging adds new lists */
        ilist todo = pm.words[slot];
        pm.words[slot] = (ilist){0};
        for (int q = 0; q < todo.n; q++) {
            int i = todo.v[q];
            word *x = &w[i];
            int has = 0;
            for (int j = 0; j + 1 < x->n && !has; j++)
                has = x->sym[j] == top.a && x->sym[j + 1] == top.b;
            if (!has) continue; /* the word lost the pair to an earlier merge */
            count_pairs(&pm, x, i, -1);
            if ((size_t)x->n > tmp_cap) {
                tmp_cap = (size_t)x->n * 2;
                tmp = xrealloc(tmp, sizeof(int) * tmp_cap);
            }
            int m = 0;
            for (int j = 0; j < x->n;) {
                if (j + 1 < x->n && x->sym[j] == top.a && x->sym[j + 1] == top.b) {
                    tmp[m++] = id;
                    j += 2;
                } else {
                    tmp[m++] = x->sym[j++];
                }
            }
            memcpy(x->sym, tmp, sizeof(int) * (size_t)m);
            x->n = m;
            count_pairs(&pm, x, i, +1);
        }
        free(todo.v);
        flush_touched(&pm, &heap);
    }
    free(tmp);
    free(heap.v);
    pm_free(&pm);
    for (int i = 0; i < words.n; i++) free(w[i].sym);
    free(w);
    ss_free(&words);

    /* 4. the tokenizer */
    int32_t *types = xmalloc(sizeof(int32_t) * (size_t)toks.n);
    for (int i = 0; i < toks.n; i++) types[i] = i < ns ? TOKEN_TYPE_CONTROL : TOKEN_TYPE_NORMAL;
    tokenizer_vocab v = {
        .model = "gpt2",
        .pre = pre_name,
        .n_tokens = toks.n,
        .tokens = (const char *const *)toks.s,
        .types = types,
        .n_merges = n_merges,
        .merges = (const char *const *)merges,
        .bos = o->bos,
        .eos = o->eos,
        .unk = -1,
        .pad = o->pad,
        .add_bos = o->add_bos != 0,
        .add_eos = 0,
    };
    rc = tokenizer_from_vocab(&v, out, e);
    free(types);
    for (int i = 0; i < n_merges; i++) free(merges[i]);
    free(merges);
    ss_free(&toks);
    return rc;
}
