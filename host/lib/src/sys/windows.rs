//! Windows.

use std::fs::File;
use std::io;
use std::os::windows::io::{FromRawHandle, RawHandle};

use windows_sys::Win32::Foundation::{
    DuplicateHandle, GetLastError, DUPLICATE_SAME_ACCESS, ERROR_BROKEN_PIPE, FALSE, HANDLE,
    INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::System::Console::{GetStdHandle, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE};
use windows_sys::Win32::System::Pipes::PeekNamedPipe;
use windows_sys::Win32::System::Threading::GetCurrentProcess;

/// Whether the pipe `handle` has data to read, or its other end closed (a read then ends).
/// Windows cannot wait on an anonymous pipe with a timeout; the caller looks again after a
/// short sleep.
pub(crate) fn pipe_readable(handle: RawHandle) -> io::Result<bool> {
    let mut available = 0u32;
    // SAFETY: a handle the caller owns; no buffer is passed, only the count is written.
    let ok = unsafe {
        PeekNamedPipe(
            handle as HANDLE,
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
            &mut available,
            std::ptr::null_mut(),
        )
    };
    if ok == FALSE {
        // SAFETY: reads the calling thread's last error; no preconditions.
        return match unsafe { GetLastError() } {
            ERROR_BROKEN_PIPE => Ok(true),
            _ => Err(io::Error::last_os_error()),
        };
    }
    Ok(available > 0)
}

/// Moves the process's stdin and stdout to new handles and returns them; stdin then reads
/// `NUL` and stdout writes to stderr, for Rust code (which asks for the standard handles at
/// every write) and for C code using the C runtime's descriptors 0 and 1 alike. (An isolated
/// child: the protocol's pipes must not be what a plugin's own code reads or prints to.) The
/// new handles are not inheritable: a program a plugin starts does not hold the pipes open.
/// Call before other threads use the standard streams.
pub(crate) fn take_standard_streams() -> io::Result<(File, File)> {
    let input = duplicate(STD_INPUT_HANDLE)?;
    let output = duplicate(STD_OUTPUT_HANDLE)?;
    redirect_standard_streams()?;
    // SAFETY: both handles were just duplicated for us and are owned by nothing else.
    Ok(unsafe {
        (
            File::from_raw_handle(input as RawHandle),
            File::from_raw_handle(output as RawHandle),
        )
    })
}

/// A non-inheritable duplicate of a standard handle.
fn duplicate(which: u32) -> io::Result<HANDLE> {
    // SAFETY: GetStdHandle has no preconditions; its result is checked.
    let handle = unsafe { GetStdHandle(which) };
    if handle.is_null() || handle == INVALID_HANDLE_VALUE {
        return Err(io::Error::other("the standard stream is not open"));
    }
    let mut copy: HANDLE = std::ptr::null_mut();
    // SAFETY: a valid handle of this process duplicated into this process; `copy` is
    // written on success only.
    let ok = unsafe {
        DuplicateHandle(
            GetCurrentProcess(),
            handle,
            GetCurrentProcess(),
            &mut copy,
            0,
            FALSE,
            DUPLICATE_SAME_ACCESS,
        )
    };
    if ok == FALSE {
        return Err(io::Error::last_os_error());
    }
    Ok(copy)
}

/// The C runtime's descriptors 0 and 1 onto `NUL` and stderr. msvcrt's `_dup2` also sets
/// the process's standard handles (SetStdHandle) and closes the originals, whose handles
/// the child inherited and which would otherwise stay open, inheritable, in every program a
/// plugin starts.
#[cfg(target_env = "gnu")]
fn redirect_standard_streams() -> io::Result<()> {
    use std::ffi::{c_char, c_int};
    extern "C" {
        fn _open(path: *const c_char, flags: c_int, ...) -> c_int;
        fn _dup2(from: c_int, to: c_int) -> c_int;
        fn _close(fd: c_int) -> c_int;
    }
    const O_RDONLY: c_int = 0;
    // SAFETY: msvcrt's descriptor calls on descriptors it manages; every result is checked.
    unsafe {
        let null = _open(c"NUL".as_ptr(), O_RDONLY);
        if null < 0 || _dup2(null, 0) < 0 || _dup2(2, 1) < 0 {
            return Err(io::Error::other(
                "cannot move the standard streams off the protocol's pipes",
            ));
        }
        _close(null);
    }
    Ok(())
}

/// The process's standard handles onto `NUL` and stderr, and the originals closed (an MSVC
/// build: C code in plugins has a C runtime of its own, set up from these handles when it
/// loads, after this).
#[cfg(not(target_env = "gnu"))]
fn redirect_standard_streams() -> io::Result<()> {
    use std::os::windows::io::IntoRawHandle;
    use windows_sys::Win32::Foundation::CloseHandle;
    use windows_sys::Win32::System::Console::{SetStdHandle, STD_ERROR_HANDLE};
    let null = File::open("NUL")?.into_raw_handle() as HANDLE;
    // SAFETY: standard handles of this process; every result is checked, and the originals
    // are closed only after they were replaced (the duplicates are separate handles).
    unsafe {
        let (input, output) = (
            GetStdHandle(STD_INPUT_HANDLE),
            GetStdHandle(STD_OUTPUT_HANDLE),
        );
        if SetStdHandle(STD_INPUT_HANDLE, null) == FALSE
            || SetStdHandle(STD_OUTPUT_HANDLE, GetStdHandle(STD_ERROR_HANDLE)) == FALSE
        {
            return Err(io::Error::last_os_error());
        }
        CloseHandle(input);
        CloseHandle(output);
    }
    Ok(())
}
