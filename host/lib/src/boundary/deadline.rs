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

/// Answers for a list of items, worked through in order by one thread of its own that goes
/// from one item to the next without waiting for the caller, and wakes the caller once, when
/// it has done them all: one hand-over for the whole list instead of one per item (loading
/// 100 plugin libraries, the cross-CPU wake-ups of a hand-over each cost a third of the time;
/// bench/README.md). Each item has `limit` from when the thread starts it; the caller, asking
/// for an answer that is not there yet, sleeps until the list is done or the item under way
/// is past its deadline. An item that misses it is answered `None`, its thread is left behind
/// (it stops when the item returns, if ever), and the items after it go to a new thread.
pub(crate) struct Each<I, T> {
    limit: Duration,
    work: std::sync::Arc<dyn Fn(&I) -> T + Send + Sync>,
    /// The items not answered yet, in order.
    left: std::collections::VecDeque<I>,
    /// What the current thread has done.
    shared: std::sync::Arc<Shared<T>>,
    /// With `one_cpu`: the caller and the thread kept on one CPU (`sys::OnThisCpu`) from
    /// the start until the caller has taken the last answer, or until an item misses its
    /// deadline (a stuck thread may be busy on that CPU; the thread for the rest is not
    /// kept there). The thread itself stays there, and so do the threads its work starts.
    pinned: Option<crate::sys::OnThisCpu>,
}

struct Shared<T> {
    progress: Mutex<Progress<T>>,
    /// Notified when the thread has done every item.
    done: std::sync::Condvar,
}

struct Progress<T> {
    answers: std::collections::VecDeque<std::thread::Result<T>>,
    /// When the item under way was started.
    started: Option<Instant>,
    finished: bool,
    /// Start no more items (one missed its deadline, or the caller is gone).
    abandoned: bool,
}

impl<I: Clone + Send + Sync + 'static, T: Send + 'static> Each<I, T> {
    pub(crate) fn start(
        items: Vec<I>,
        limit: Duration,
        one_cpu: bool,
        work: impl Fn(&I) -> T + Send + Sync + 'static,
    ) -> Each<I, T> {
        let work: std::sync::Arc<dyn Fn(&I) -> T + Send + Sync> = std::sync::Arc::new(work);
        let pinned = one_cpu.then(crate::sys::OnThisCpu::pin);
        let shared = Self::spawn(items.clone(), &work);
        Each {
            limit,
            work,
            left: items.into(),
            shared,
            pinned,
        }
    }

    fn spawn(
        items: Vec<I>,
        work: &std::sync::Arc<dyn Fn(&I) -> T + Send + Sync>,
    ) -> std::sync::Arc<Shared<T>> {
        let shared = std::sync::Arc::new(Shared {
            progress: Mutex::new(Progress {
                answers: Default::default(),
                started: None,
                finished: false,
                abandoned: false,
            }),
            done: std::sync::Condvar::new(),
        });
        let (work, on) = (work.clone(), shared.clone());
        let spawned = std::thread::Builder::new()
            .name("qlam-plugin-load".into())
            .stack_size(STACK_SIZE)
            .spawn(move || {
                let lock = || on.progress.lock().unwrap_or_else(|p| p.into_inner());
                for item in &items {
                    {
                        let mut p = lock();
                        if p.abandoned {
                            return;
                        }
                        p.started = Some(Instant::now());
                    }
                    let answer = catch_unwind(AssertUnwindSafe(|| work(item)));
                    let mut p = lock();
                    p.answers.push_back(answer);
                    p.started = None;
                }
                lock().finished = true;
                on.done.notify_all();
            });
        if let Err(e) = spawned {
            panic!("cannot start a thread for loading plugins: {e}");
        }
        shared
    }

    /// The next item and its answer (`None`: it missed its deadline); `None` at the end.
    /// A panic in the work is resumed here.
    pub(crate) fn next_answer(&mut self) -> Option<(I, Option<T>)> {
        let item = self.left.pop_front()?;
        let mut p = self
            .shared
            .progress
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(answer) = p.answers.pop_front() {
                if self.left.is_empty() {
                    self.pinned = None;
                }
                return match answer {
                    Ok(v) => Some((item, Some(v))),
                    Err(panic) => resume_unwind(panic),
                };
            }
            // The thread is on this item (or about to start it): until it is done with the
            // list, or this item is past its deadline.
            let now = Instant::now();
            let wait = match p.started {
                Some(started) if now >= started + self.limit => {
                    p.abandoned = true;
                    drop(p);
                    self.pinned = None;
                    self.shared = Self::spawn(self.left.iter().cloned().collect(), &self.work);
                    return Some((item, None));
                }
                Some(started) => started + self.limit - now,
                None if p.finished => unreachable!("a finished thread answered every item"),
                None => self.limit,
            };
            p = self
                .shared
                .done
                .wait_timeout(p, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The item whose answer comes next.
    pub(crate) fn peek(&self) -> Option<&I> {
        self.left.front()
    }
}

impl<I, T> Each<I, T> {
    /// Tells the thread to start no more items; returns those not answered.
    pub(crate) fn stop(&mut self) -> impl Iterator<Item = &I> {
        self.shared
            .progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .abandoned = true;
        self.left.iter()
    }
}

impl<I, T> Drop for Each<I, T> {
    fn drop(&mut self) {
        // Items not asked for are not worked on.
        self.shared
            .progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .abandoned = true;
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

    /// A list worked through on one thread: answers in order, one thread for all of them;
    /// an item that never returns is answered `None` at its deadline and the items after it
    /// are still answered (by a new thread); a panic reaches the caller.
    #[test]
    fn each_answers_in_order_and_goes_on_past_a_stuck_item() {
        let (_keep, stuck) = mpsc::channel::<()>();
        let stuck = Mutex::new(stuck);
        let mut each = Each::start(
            vec![1u32, 2, 0, 3, 4],
            Duration::from_millis(200),
            false,
            move |&n| {
                if n == 0 {
                    let _ = stuck.lock().unwrap().recv();
                }
                (n * 10, std::thread::current().id())
            },
        );
        let mut answers = Vec::new();
        while let Some((n, answer)) = each.next_answer() {
            answers.push((n, answer));
        }
        let numbers: Vec<_> = answers
            .iter()
            .map(|(n, a)| (*n, a.map(|(v, _)| v)))
            .collect();
        assert_eq!(
            numbers,
            [
                (1, Some(10)),
                (2, Some(20)),
                (0, None),
                (3, Some(30)),
                (4, Some(40))
            ]
        );
        let thread = |i: usize| answers[i].1.unwrap().1;
        assert_eq!(thread(0), thread(1), "one thread for the items before");
        assert_eq!(thread(3), thread(4));
        assert_ne!(thread(1), thread(3), "a new thread after the stuck item");

        let mut each = Each::start(vec![1u32], Duration::from_secs(10), false, |_| -> u32 {
            panic!("host bug")
        });
        assert!(catch_unwind(AssertUnwindSafe(|| each.next_answer())).is_err());
    }

    /// How many CPUs the calling thread may run on.
    #[cfg(target_os = "linux")]
    fn cpus_allowed() -> u32 {
        // SAFETY: a cpu_set_t on the stack, of the size passed; 0 is the calling thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(
                libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
                0
            );
            libc::CPU_COUNT(&set) as u32
        }
    }

    /// `one_cpu`: the thread runs on one CPU (where the machine lets this test run on more);
    /// the caller gets its CPUs back after the last answer, and at once when an item misses
    /// its deadline, and the thread for the rest is not kept on one.
    #[cfg(target_os = "linux")]
    #[test]
    fn each_on_one_cpu_gives_the_caller_its_cpus_back() {
        let before = cpus_allowed();
        let mut each = Each::start(vec![1u32, 2], Duration::from_secs(10), true, |_| {
            cpus_allowed()
        });
        let mut seen = Vec::new();
        while let Some((_, answer)) = each.next_answer() {
            seen.push(answer.unwrap());
        }
        assert_eq!(seen, [1, 1]);
        assert_eq!(cpus_allowed(), before, "given back after the last answer");

        let (_keep, stuck) = mpsc::channel::<()>();
        let stuck = Mutex::new(stuck);
        let mut each = Each::start(vec![0u32, 1], Duration::from_millis(200), true, move |&n| {
            if n == 0 {
                let _ = stuck.lock().unwrap().recv();
            }
            cpus_allowed()
        });
        assert_eq!(each.next_answer(), Some((0, None)));
        assert_eq!(cpus_allowed(), before, "given back when an item is late");
        assert_eq!(each.next_answer(), Some((1, Some(before))));
        drop(each);
        assert_eq!(cpus_allowed(), before);
    }
}
