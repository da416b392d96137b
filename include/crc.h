/* crc: CRC-32C (Castagnoli, the iSCSI/ext4 polynomial 0x1EDC6F41) over byte buffers.
 *
 * Used to detect torn or corrupted checkpoint data that HDF5 itself would read without
 * complaint. Uses the SSE4.2 crc32 instruction when the CPU has it (checked at run time, so
 * debug builds without -march=native are just as fast) and a nibble table otherwise. Not a
 * cryptographic hash: it detects accidents, not tampering. */
#ifndef RLAIF_CRC_H
#define RLAIF_CRC_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC over n more bytes; start with crc = 0. crc32c(0, "123456789", 9) is
 * 0xE3069283. Chunked updates give the same value as one call over the whole buffer. */
uint32_t crc32c(uint32_t crc, const void *data, size_t n);
/* The portable path alone, for tests that compare it with the hardware one. */
uint32_t crc32c_portable(uint32_t crc, const void *data, size_t n);

#endif
