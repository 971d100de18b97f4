/* What wine reports as a file's owner and DACL (SDDL), for the plugin trust checks on Windows
 * (issue 16). Build and run (windows/README.md, "Plugin trust under wine"):
 *   x86_64-w64-mingw32-gcc -municode -o target/windows/acl-probe.exe windows/acl-probe.c -ladvapi32
 *   . windows/env.sh && "$QLAM_WINE" target/windows/acl-probe.exe 'Z:\some\file' …
 */
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>
#include <stdio.h>

int wmain(int argc, wchar_t **argv)
{
    const SECURITY_INFORMATION what =
        OWNER_SECURITY_INFORMATION | GROUP_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION;
    for (int i = 1; i < argc; i++) {
        PSECURITY_DESCRIPTOR sd = NULL;
        LPWSTR sddl = NULL;
        DWORD r = GetNamedSecurityInfoW(argv[i], SE_FILE_OBJECT, what, NULL, NULL, NULL, NULL, &sd);
        if (r != ERROR_SUCCESS) {
            wprintf(L"%ls: error %lu\n", argv[i], r);
            continue;
        }
        ConvertSecurityDescriptorToStringSecurityDescriptorW(sd, SDDL_REVISION_1, what, &sddl, NULL);
        wprintf(L"%ls: %ls\n", argv[i], sddl);
        LocalFree(sddl);
        LocalFree(sd);
    }
    HANDLE token;
    BYTE buf[256];
    DWORD n;
    LPWSTR me = NULL;
    if (OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token) &&
        GetTokenInformation(token, TokenUser, buf, sizeof buf, &n) &&
        ConvertSidToStringSidW(((TOKEN_USER *)buf)->User.Sid, &me))
        wprintf(L"this process runs as %ls\n", me);
    return 0;
}
