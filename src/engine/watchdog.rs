//! Wall-time and CPU-time enforcement for JS that never yields. A tokio timer cannot fire while an
//! infinite loop holds the step's thread, so each step thread has a companion thread that terminates
//! the isolate at the deadline, or once the step thread has used its CPU time.
//!
//! Terminating only stops running JS. Native work that ignores it (a deep `JSON.parse`) is the
//! supervisor's to end: it kills the worker process after a short grace.

use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use deno_core::v8::IsolateHandle;

/// Which limit the watchdog enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fired {
    Wall,
    Cpu,
}

struct Arming {
    deadline: Instant,
    isolate: IsolateHandle,
    /// The step thread's CPU clock, and the CPU time it may use.
    cpu: Option<(libc::clockid_t, Duration)>,
    /// When the CPU clock is next worth reading: CPU time never runs faster than wall time.
    cpu_check: Instant,
}

#[derive(Default)]
struct State {
    armed: Option<Arming>,
    fired: Option<Fired>,
    shutdown: bool,
}

pub struct Watchdog {
    shared: Arc<(Mutex<State>, Condvar)>,
    thread: Option<thread::JoinHandle<()>>,
}

/// The watchdog armed for one step. `disarm` says which limit, if any, was hit.
pub struct Armed<'a>(&'a Watchdog);

/// The calling thread's CPU-time clock.
fn thread_cpu_clock() -> Option<libc::clockid_t> {
    let mut id: libc::clockid_t = 0;
    // SAFETY: pthread_self is always valid for the calling thread; `id` is a valid out pointer.
    let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
    (rc == 0).then_some(id)
}

fn clock_now(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out pointer; an invalid clock only makes the call fail.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Watchdog {
    pub fn start(name: String) -> std::io::Result<Watchdog> {
        let shared: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let for_thread = shared.clone();
        let thread = thread::Builder::new()
            .name(name)
            .spawn(move || watch(&for_thread))?;
        Ok(Watchdog {
            shared,
            thread: Some(thread),
        })
    }

    /// Arms the watchdog for a step running on the calling thread.
    pub fn arm(&self, deadline: Instant, cpu_limit: Duration, isolate: IsolateHandle) -> Armed<'_> {
        let cpu = thread_cpu_clock().map(|clock| (clock, clock_now(clock) + cpu_limit));
        let (lock, cv) = &*self.shared;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        st.armed = Some(Arming {
            deadline,
            isolate,
            cpu,
            cpu_check: Instant::now() + cpu_limit,
        });
        st.fired = None;
        cv.notify_one();
        Armed(self)
    }
}

impl Armed<'_> {
    pub fn disarm(self) -> Option<Fired> {
        let (lock, cv) = &*self.0.shared;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        st.armed = None;
        cv.notify_one();
        st.fired
    }
}

fn watch(shared: &(Mutex<State>, Condvar)) {
    let (lock, cv) = shared;
    let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if st.shutdown {
            return;
        }
        let Some(arming) = st.armed.as_mut() else {
            st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        let now = Instant::now();
        let mut fired = None;
        if now >= arming.deadline {
            fired = Some(Fired::Wall);
        } else if let Some((clock, until)) = arming.cpu {
            if now >= arming.cpu_check {
                let used = clock_now(clock);
                if used >= until {
                    fired = Some(Fired::Cpu);
                } else {
                    arming.cpu_check = now + (until - used);
                }
            }
        }
        if let Some(f) = fired {
            if let Some(a) = st.armed.take() {
                a.isolate.terminate_execution();
            }
            st.fired = Some(f);
            continue;
        }
        let next = if arming.cpu.is_some() {
            arming.deadline.min(arming.cpu_check)
        } else {
            arming.deadline
        };
        st = cv
            .wait_timeout(st, next.saturating_duration_since(now))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        {
            let (lock, cv) = &*self.shared;
            lock.lock().unwrap_or_else(|e| e.into_inner()).shutdown = true;
            cv.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
