/* crc: CRC-32C; see include/crc.h. Reflected polynomial 0x82F63B78, initial value and final
 * xor 0xFFFFFFFF (the conventional CRC-32C), so values match other CRC-32C tools. */
#include "crc.h"

#include <string.h>

/* crc of each 4-bit value, reflected; 16 entries keep the portable path table-small. */
static const uint32_t nibble_table[16] = {
    0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1, 0x417b1dbc, 0x5125dad3, 0x61c69362, 0x7198540d,
    0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9, 0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75,
};

uint32_t crc32c_portable(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ nibble_table[crc & 15];
        crc = (crc >> 4) ^ nibble_table[crc & 15];
    }
    return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const void *data,
                                                               size_t n) {
    const unsigned char *p = data;
    uint64_t c = ~crc & 0xffffffffu;
    while (n > 0 && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        n--;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        n--;
    }
    return ~(uint32_t)c;
}

uint32_t crc32c(uint32_t crc, const void *data, size_t n) {
    if (__builtin_cpu_supports("sse4.2")) return crc32c_sse42(crc, data, n);
    return crc32c_portable(crc, data, n);
}
#else
uint32_t crc32c(uint32_t crc, const void *data, size_t n) {
    return crc32c_portable(crc, data, n);
}
#endif
