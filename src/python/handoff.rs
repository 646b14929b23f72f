//! The default handler mode: handlers on the I/O thread, the I/O role handed to another
//! thread when a handler runs long (as tokio's `block_in_place` hands off a worker).
//!
//! One current-thread runtime drives every connection, as in the inline mode, and whichever
//! handler thread holds the *driver* role drives it: detached, it runs the runtime until a
//! job is ready; then, attached, it runs every ready job itself, so no request crosses a
//! thread and a short handler costs what it costs inline. A watchdog thread (never
//! attached to Python) samples the job in progress every [`WATCH_TICK`]; a job it finds
//! still there at the next sample, its thread asleep in the kernel (I/O, a lock, a sleep),
//! is long (one still on a CPU, or waiting for one, after [`RUNNING_TICKS`] samples): the
//! watchdog takes the role from its thread and gives it to a standby handler thread, which drives the runtime and runs the next
//! jobs while the long one goes on. The thread whose handler ran long, once it returns,
//! becomes a standby itself. When every handler thread is busy, the watchdog drives the
//! runtime itself until one comes back, so connections (file routes, new connections,
//! answers already made) never wait for Python.
//!
//! A streaming handler's write that must wait drives the runtime too (`inline_io`), on
//! whichever thread it runs: tokio's current-thread runtime lets several threads call
//! `block_on`, one of them driving the I/O at a time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use pyo3::prelude::*;
use tokio::runtime::Runtime;

use crate::python::handler_threads::{run_job, HandlerPool, Work};
use crate::python::inline_io::{self, JobWait};
use crate::python::reply_batch::{self, ReplyBatch};

/// How often the watchdog samples the job in progress: a job still running at the next
/// sample (so after one to two ticks) is handed off.
pub const WATCH_TICK: Duration = Duration::from_millis(1);

/// [`WATCH_TICK`], or `GODOTTPD_HANDOFF_TICK_US` microseconds: for measurements only (under
/// valgrind, where everything runs some 50 times slower, every handler would look long).
fn watch_tick() -> Duration {
    std::env::var("GODOTTPD_HANDOFF_TICK_US")
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .filter(|&micros| micros > 0)
        .map_or(WATCH_TICK, Duration::from_micros)
}

/// Samples a job may stay *running* (on a CPU, or waiting for one) before it is handed
/// off: a handler that blocks (asleep in the kernel: I/O, a lock, a sleep) is handed off at
/// the first sample that finds it still there, but one that merely lost its CPU to another
/// process for a time slice is not worth a hand-off (on a busy machine that happens all the
/// time); a handler that computes for this long is.
const RUNNING_TICKS: u32 = 20;

/// Whether the thread whose `/proc/self/task/TID/stat` is `stat` is running or runnable
/// (state `R`), as opposed to asleep in the kernel. Unknown (no procfs): `false`.
fn on_cpu(stat: &std::path::Path) -> bool {
    let Ok(text) = std::fs::read_to_string(stat) else {
        return false;
    };
    // The command name, in parentheses, may hold anything; the state follows the last ')'.
    text.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        == Some('R')
}

/// The calling thread's `/proc/self/task/TID/stat`, where procfs tells it.
fn own_stat_path() -> Option<std::path::PathBuf> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    let tid = link.file_name()?.to_owned();
    Some(
        std::path::Path::new("/proc/self/task")
            .join(tid)
            .join("stat"),
    )
}

/// Idle samples after which the watchdog sleeps until the next job (an idle server does
/// not wake a thread every millisecond).
const IDLE_TICKS: u32 = 200;

/// How long the driver stays in one I/O round without jobs (a safety net: jobs and Stop
/// both wake it at once through the job signal).
const DRIVER_TICK: Duration = Duration::from_millis(500);

/// The tickets' epoch part starts at this bit; the lower bits count one driver's jobs.
const EPOCH_SHIFT: u32 = 40;

struct Roles {
    /// Nobody holds the driver role: the next standby takes it.
    vacant: bool,
    /// Handler threads waiting for the role.
    standby: usize,
    stop: bool,
}

pub struct Handoff {
    /// The one strong reference to the runtime, until `shutdown`; the threads upgrade
    /// `weak` for each round they drive it.
    owner: Mutex<Option<Arc<Runtime>>>,
    weak: Weak<Runtime>,
    jobs: Receiver<Work>,
    job_signal: Arc<tokio::sync::Notify>,
    /// Bumped at each hand-off: a driver whose epoch is no longer current has lost the role.
    epoch: AtomicU64,
    /// The driver's job in progress: odd while a job runs, a new value for every job.
    running: AtomicU64,
    watchdog_asleep: AtomicBool,
    /// The driver thread's `/proc/self/task/TID/stat` (set at each claim of the role).
    driver_stat: Mutex<Option<std::path::PathBuf>>,
    /// `Roles::stop`, for the watchdog's lock-free ticks.
    stopping: AtomicBool,
    /// The watchdog's sampling period ([`WATCH_TICK`]).
    tick: Duration,
    roles: Mutex<Roles>,
    standby: Condvar,
    watchdog: Condvar,
    /// Told when a standby has taken a vacant role (the watchdog then stops driving).
    claimed: tokio::sync::Notify,
    /// The answers of the driver's round, sent when the runtime is next driven, by
    /// whichever thread drives it (see `reply_batch`).
    replies: Arc<ReplyBatch>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

enum RoundEnd {
    /// No job left: back to driving the runtime.
    Idle,
    /// The watchdog gave the role to another thread while a job ran.
    Replaced,
    Stop,
}

impl Handoff {
    fn new(
        runtime: Runtime,
        jobs: Receiver<Work>,
        job_signal: Arc<tokio::sync::Notify>,
    ) -> Arc<Handoff> {
        let runtime = Arc::new(runtime);
        Arc::new(Handoff {
            weak: Arc::downgrade(&runtime),
            owner: Mutex::new(Some(runtime)),
            jobs,
            job_signal,
            epoch: AtomicU64::new(1),
            running: AtomicU64::new(0),
            watchdog_asleep: AtomicBool::new(false),
            driver_stat: Mutex::new(None),
            stopping: AtomicBool::new(false),
            tick: watch_tick(),
            roles: Mutex::new(Roles {
                vacant: true,
                standby: 0,
                stop: false,
            }),
            standby: Condvar::new(),
            watchdog: Condvar::new(),
            claimed: tokio::sync::Notify::new(),
            replies: ReplyBatch::new(),
        })
    }

    /// Ends every thread that is not running a handler (and the others once theirs returns).
    fn stop(&self) {
        lock(&self.roles).stop = true;
        self.stopping.store(true, Ordering::Release);
        self.standby.notify_all();
        self.watchdog.notify_all();
        self.claimed.notify_one();
    }

    /// Shuts the runtime down (every connection still open is dropped), once no thread is
    /// driving it; a thread still driving it at `deadline` (a streaming handler waiting for
    /// its client) keeps it until it lets go. Call detached, after `Work::Stop` was sent.
    pub fn shutdown(&self, deadline: Instant, wait: bool) {
        // The driver may find the runtime gone before it reads `Work::Stop`: every thread
        // is told here as well.
        self.stop();
        let Some(mut runtime) = lock(&self.owner).take() else {
            return;
        };
        loop {
            match Arc::try_unwrap(runtime) {
                Ok(runtime) if wait => return runtime.shutdown_timeout(Duration::from_millis(200)),
                Ok(runtime) => return runtime.shutdown_background(),
                Err(shared) if wait && Instant::now() < deadline => {
                    runtime = shared;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return,
            }
        }
    }

    /// Standby: waits (detached) until the role is vacant; returns the epoch it holds the
    /// role under, or `None` on stop.
    fn wait_for_role(&self) -> Option<u64> {
        let mut roles = lock(&self.roles);
        roles.standby += 1;
        while !roles.vacant && !roles.stop {
            roles = self
                .standby
                .wait(roles)
                .unwrap_or_else(PoisonError::into_inner);
        }
        roles.standby -= 1;
        if roles.stop {
            return None;
        }
        roles.vacant = false;
        let epoch = self.epoch.load(Ordering::Acquire);
        drop(roles);
        self.claimed.notify_one();
        Some(epoch)
    }

    /// Drives the runtime (detached) until a job may be ready; `false` once it is gone.
    fn drive_until_jobs(&self, waiting: &mut JobWait) -> bool {
        let Some(runtime) = self.weak.upgrade() else {
            return false;
        };
        runtime.block_on(async {
            self.replies.deliver();
            waiting.wait(&self.job_signal, DRIVER_TICK).await;
        });
        true
    }

    /// Runs every ready job while this thread holds the role under `epoch`.
    fn run_round(&self, py: Python<'_>, epoch: u64, count: &mut u64) -> RoundEnd {
        loop {
            if self.epoch.load(Ordering::Acquire) != epoch {
                return RoundEnd::Replaced;
            }
            match self.jobs.try_recv() {
                Ok(Work::Job(job)) => {
                    *count = count.wrapping_add(2) & ((1 << EPOCH_SHIFT) - 1);
                    let ticket = (epoch << EPOCH_SHIFT) | *count | 1;
                    self.running.store(ticket, Ordering::SeqCst);
                    if self.watchdog_asleep.load(Ordering::SeqCst) {
                        self.wake_watchdog();
                    }
                    run_job(py, *job);
                    let _ = self.running.compare_exchange(
                        ticket,
                        ticket + 1,
                        Ordering::Release,
                        Ordering::Relaxed,
                    );
                }
                Ok(Work::Stop) | Err(TryRecvError::Disconnected) => return RoundEnd::Stop,
                Err(TryRecvError::Empty) => return RoundEnd::Idle,
            }
        }
    }

    fn wake_watchdog(&self) {
        let _roles = lock(&self.roles);
        self.watchdog_asleep.store(false, Ordering::SeqCst);
        self.watchdog.notify_all();
    }

    /// Holds the driver role until it is taken away (`true`) or the server stops (`false`).
    fn drive(&self, py: Python<'_>, epoch: u64) -> bool {
        *lock(&self.driver_stat) = own_stat_path();
        let mut count = 0;
        let mut waiting = JobWait::default();
        // A thread taking over runs what is waiting first: the job signal may have woken
        // the thread it replaced.
        let mut first = true;
        loop {
            if !first && !py.detach(|| self.drive_until_jobs(&mut waiting)) {
                return false;
            }
            first = false;
            let Some(handle) = self.weak.upgrade().map(|runtime| runtime.handle().clone()) else {
                return false;
            };
            // The handlers run in the runtime's context, so that a streaming handler's write
            // can drive the I/O while its client catches up (see `inline_io`). Only a handle:
            // a handler stuck past the grace period must not keep `stop()` from shutting the
            // runtime down.
            let _context = handle.enter();
            let end = inline_io::as_loop(&self.weak, || {
                reply_batch::holding(&self.replies, || self.run_round(py, epoch, &mut count))
            });
            match end {
                // The next round of I/O sends this round's answers.
                RoundEnd::Idle => {}
                // The new driver may be waiting for jobs already: send them from here.
                RoundEnd::Replaced => {
                    self.replies.deliver();
                    return true;
                }
                RoundEnd::Stop => {
                    self.replies.deliver();
                    self.stop();
                    return false;
                }
            }
        }
    }

    fn handler_thread(&self) {
        Python::attach(|py| {
            while let Some(epoch) = py.detach(|| self.wait_for_role()) {
                if !self.drive(py, epoch) {
                    break;
                }
            }
        });
        // However this thread's turn ended (Stop, the runtime shut down), none waits on.
        self.stop();
    }

    /// Takes the role from a driver whose job `stuck` is still running, gives it to a
    /// standby, and drives the runtime itself while nobody has taken it.
    fn hand_off(&self, stuck: u64) {
        {
            let mut roles = lock(&self.roles);
            // Only the current driver's job counts (a thread that already lost the role
            // finishes its job on its own).
            let current = stuck >> EPOCH_SHIFT == self.epoch.load(Ordering::Acquire);
            if roles.stop
                || roles.vacant
                || !current
                || self.running.load(Ordering::Acquire) != stuck
            {
                return;
            }
            self.epoch.fetch_add(1, Ordering::AcqRel);
            roles.vacant = true;
            if roles.standby > 0 {
                self.standby.notify_one();
            }
        }
        // What the stuck driver answered before its long job goes out now, whoever drives
        // next (a rare path: the wake-ups are remote).
        self.replies.deliver();
        loop {
            {
                let roles = lock(&self.roles);
                if roles.stop || !roles.vacant {
                    return;
                }
            }
            let Some(runtime) = self.weak.upgrade() else {
                return;
            };
            runtime.block_on(async {
                let _ = tokio::time::timeout(DRIVER_TICK, self.claimed.notified()).await;
            });
        }
    }

    fn watchdog_thread(&self) {
        let mut last = 0;
        let mut idle = 0;
        // Samples that found the same job running.
        let mut stuck = 0;
        loop {
            if idle >= IDLE_TICKS {
                let mut roles = lock(&self.roles);
                self.watchdog_asleep.store(true, Ordering::SeqCst);
                // A job that began before the flag was up is seen here.
                if self.running.load(Ordering::SeqCst) == last {
                    while self.watchdog_asleep.load(Ordering::SeqCst) && !roles.stop {
                        roles = self
                            .watchdog
                            .wait(roles)
                            .unwrap_or_else(PoisonError::into_inner);
                    }
                }
                self.watchdog_asleep.store(false, Ordering::SeqCst);
                idle = 0;
            } else {
                // A plain sleep: the cheapest tick (one system call, no lock); `stop()`
                // is seen at the next one.
                std::thread::sleep(self.tick);
            }
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            let now = self.running.load(Ordering::Acquire);
            if now != last {
                last = now;
                idle = 0;
                stuck = 0;
            } else if now & 1 == 1 {
                stuck += 1;
                let running =
                    stuck < RUNNING_TICKS && lock(&self.driver_stat).as_deref().is_some_and(on_cpu);
                if !running {
                    self.hand_off(now);
                    last = 0;
                    stuck = 0;
                }
            } else {
                idle += 1;
            }
        }
    }
}

impl HandlerPool {
    /// The default mode (see the module's documentation): `count` handler threads taking
    /// turns at driving `runtime` (current-thread) and running the handlers, and a watchdog.
    pub fn start_handoff(
        count: usize,
        runtime: Runtime,
        jobs: Receiver<Work>,
        job_signal: Arc<tokio::sync::Notify>,
    ) -> std::io::Result<(HandlerPool, Arc<Handoff>)> {
        let handoff = Handoff::new(runtime, jobs, job_signal);
        let mut threads: Vec<(String, Box<dyn FnOnce() + Send>)> = Vec::with_capacity(count + 1);
        for index in 0..count {
            let shared = handoff.clone();
            threads.push((
                format!("godottpd-handler-{index}"),
                Box::new(move || shared.handler_thread()),
            ));
        }
        let shared = handoff.clone();
        threads.push((
            "godottpd-watchdog".into(),
            Box::new(move || shared.watchdog_thread()),
        ));
        let pool = HandlerPool::spawn_all(threads).inspect_err(|_| handoff.stop())?;
        Ok((pool, handoff))
    }
}
