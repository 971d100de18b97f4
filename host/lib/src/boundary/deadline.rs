//! Provider calls with a deadline.
//!
//! Code running in this process cannot be stopped from outside: a thread stuck in a provider
//! stays stuck. So each call runs on a worker thread and the caller waits for its answer at
//! most until the deadline; when it passes, the caller goes on with an error and the worker
//! is left to finish (or not) on its own, its answer thrown away. Workers that finish go back
//! to a small pool, so a call costs a hand-over between two threads, not a thread start.
//! (Running the provider in a child process, which can be killed, is the complete answer.)

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Work for a worker: it runs, then answers how to hand its result over. The worker lists
/// itself as idle *before* handing the result over, so that a caller making its next call at
/// once finds it (instead of starting a second thread).
type Job = Box<dyn FnOnce() -> Deliver + Send>;
type Deliver = Box<dyn FnOnce() + Send>;

/// Idle workers, each waiting on its own channel, with the fork generation they were
/// started in.
static IDLE: Mutex<Vec<(u64, Sender<Job>)>> = Mutex::new(Vec::new());

/// How many `fork()`s this process is from the one that started the pool. A forked child
/// has none of its parent's threads, but the list of idle workers is copied into it: a job
/// sent to one would never run (each call would wait for its whole deadline). So a worker
/// of an earlier generation is never given work; the Python package, whose programs fork
/// (multiprocessing, gunicorn), depends on this.
static GENERATION: AtomicU64 = AtomicU64::new(0);

#[cfg(unix)]
extern "C" fn forked() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

fn generation() -> u64 {
    #[cfg(unix)]
    {
        static WATCH: std::sync::Once = std::sync::Once::new();
        WATCH.call_once(|| crate::sys::after_fork_in_child(forked));
    }
    GENERATION.load(Ordering::Relaxed)
}

/// More idle workers than this end instead of waiting: calls are rarely concurrent.
const MAX_IDLE: usize = 8;

/// How long each side looks for the other's message without sleeping: a provider call is
/// often a few microseconds, and a thread asleep on another CPU costs a cross-CPU wake-up to
/// rouse (tens of µs on the 2-vCPU test machine; bench/README.md).
const SPIN: Duration = Duration::from_micros(50);

/// `try_recv` for at most [`SPIN`]; `None` if nothing came (or the sender is gone).
fn spin_recv<T>(rx: &Receiver<T>) -> Option<Result<T, ()>> {
    let until = Instant::now() + SPIN;
    loop {
        match rx.try_recv() {
            Ok(v) => return Some(Ok(v)),
            Err(TryRecvError::Disconnected) => return Some(Err(())),
            Err(TryRecvError::Empty) if Instant::now() < until => std::hint::spin_loop(),
            Err(TryRecvError::Empty) => return None,
        }
    }
}

/// A provider call's stack: as large as a main thread's, since providers were written to run
/// on one (an HTTP client and a TLS handshake are deep).
const STACK_SIZE: usize = 8 * 1024 * 1024;

/// How the caller waits for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Look for it without sleeping for up to [`SPIN`] first: for calls that are often
    /// quicker than a wake-up (a provider answering from memory).
    Spin,
    /// Sleep at once: for work that takes longer than a wake-up anyway (loading a library).
    Sleep,
}

/// Runs `f` on a worker thread; `None` when it has not answered within `limit` (it goes on
/// running, unobserved). A panic in `f` is resumed on the caller's thread.
pub(crate) fn run<T: Send + 'static>(
    limit: Duration,
    wait: Wait,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::sync_channel(1);
    dispatch(Box::new(move || {
        let result = catch_unwind(AssertUnwindSafe(f));
        Box::new(move || {
            let _ = tx.send(result);
        })
    }));
    let spun = match wait {
        Wait::Spin => spin_recv(&rx),
        Wait::Sleep => None,
    };
    let answer = match spun {
        Some(Ok(a)) => Ok(a),
        _ => rx.recv_timeout(limit),
    };
    match answer {
        Ok(Ok(v)) => Some(v),
        Ok(Err(panic)) => resume_unwind(panic),
        Err(RecvTimeoutError::Timeout) => None,
        Err(RecvTimeoutError::Disconnected) => unreachable!("a worker always answers"),
    }
}

fn dispatch(mut job: Job) {
    let now = generation();
    loop {
        let idle = {
            let mut idle = IDLE.lock().unwrap_or_else(|p| p.into_inner());
            // Workers listed before a fork are not in this process.
            idle.retain(|(born, _)| *born == now);
            idle.pop()
        };
        match idle {
            Some((_, worker)) => match worker.send(job) {
                Ok(()) => return,
                // That worker has ended; try the next one.
                Err(mpsc::SendError(j)) => job = j,
            },
            None => return spawn_worker(job, now),
        }
    }
}

fn spawn_worker(first: Job, born: u64) {
    let (tx, rx) = mpsc::channel::<Job>();
    let spawned = std::thread::Builder::new()
        .name("qlam-provider-call".into())
        .stack_size(STACK_SIZE)
        .spawn(move || {
            let mut job = first;
            loop {
                let deliver = job();
                let listed = {
                    let mut idle = IDLE.lock().unwrap_or_else(|p| p.into_inner());
                    let room = idle.len() < MAX_IDLE;
                    if room {
                        idle.push((born, tx.clone()));
                    }
                    room
                };
                deliver();
                if !listed {
                    return;
                }
                match spin_recv(&rx) {
                    Some(Ok(next)) => job = next,
                    Some(Err(())) => return,
                    None => match rx.recv() {
                        Ok(next) => job = next,
                        Err(_) => return,
                    },
                }
            }
        });
    if let Err(e) = spawned {
        // Without a thread there is no deadline to keep; failing the call would be worse.
        panic!("cannot start a thread for a provider call: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_in_time_are_returned() {
        assert_eq!(run(Duration::from_secs(10), Wait::Spin, || 7), Some(7));
        // A worker is reused for the next call.
        let first = run(Duration::from_secs(10), Wait::Spin, || {
            std::thread::current().id()
        })
        .unwrap();
        let second = run(Duration::from_secs(10), Wait::Spin, || {
            std::thread::current().id()
        })
        .unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn a_call_that_never_answers_misses_its_deadline() {
        let (_keep, stuck) = mpsc::channel::<()>();
        let stuck = Mutex::new(stuck);
        let r = run(Duration::from_millis(50), Wait::Sleep, move || {
            let _ = stuck.lock().unwrap().recv();
        });
        assert_eq!(r, None);
        // Others still get their answers.
        assert_eq!(
            run(Duration::from_secs(10), Wait::Spin, || "ok"),
            Some("ok")
        );
    }

    #[test]
    fn a_panic_reaches_the_caller() {
        let r = catch_unwind(|| run(Duration::from_secs(10), Wait::Spin, || panic!("host bug")));
        assert!(r.is_err());
    }
}
