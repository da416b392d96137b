/* fuzz_gguf: libFuzzer target for the GGUF reader and everything that reads metadata from a
 * file: open a buffer, and when it is accepted, format every value, convert every tensor the
 * program converts, read a model configuration, build the tokenizer and run it once.
 * Build and run with `make fuzz` (clang, -fsanitize=fuzzer,address,undefined). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_model.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f;
    rl_err e = {0};
    if (gguf_open_memory(data, size, "fuzz", &f, &e) != ERR_OK) return 0;
    char buf[512];
    for (int64_t i = 0; i < gguf_n_kv(f); i++)
        gguf_kv_format(f, gguf_kv_at(f, i), buf, sizeof buf, 8);
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor_info *t = gguf_tensor_at(f, i);
        if (t->nelements > (1u << 20)) continue;
        float *x = malloc(sizeof(float) * (t->nelements ? t->nelements : 1));
        gguf_tensor_to_f32(f, t, x, t->nelements, &e);
        free(x);
    }
    model_config cfg;
    gguf_model_config(f, &cfg, &e);
    tokenizer *tok;
    if (tokenizer_from_gguf(f, &tok, &e) == ERR_OK) {
        static const char text[] = " Hello, world! 123 <s>\n\xc3\xa9\xe4\xb8\xad\xff";
        int *ids, n;
        if (tokenizer_encode(tok, text, sizeof text - 1, TOK_ADD_SPECIAL | TOK_PARSE_SPECIAL, &ids,
                             &n, &e) == ERR_OK) {
            char *s;
            size_t len;
            if (tokenizer_decode(tok, ids, n, TOK_DECODE_SPECIAL, &s, &len, &e) == ERR_OK) free(s);
            free(ids);
        }
        gguf_writer *w = gguf_writer_new();
        tokenizer_write_gguf(tok, w);
        gguf_writer_free(w);
        tokenizer_free(tok);
    }
    gguf_close(f);
    return 0;
}
