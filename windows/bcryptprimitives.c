/* bcryptprimitives.dll shim for wine < 9: Rust's std (1.78+) imports ProcessPrng from
 * bcryptprimitives.dll, which wine 8 (Debian 12) does not ship. Forward to bcrypt. */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {   /* BCryptGenRandom takes a ULONG length */
        ULONG chunk = len > 0x80000000u ? 0x80000000u : (ULONG)len;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
