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
    name: String,
    shared: Arc<(Mutex<State>, Condvar)>,
    /// Started by the first `arm`, already armed: a step process (which arms once) then wakes its
    /// watchdog only by starting it.
    thread: Mutex<Option<thread::JoinHandle<()>>>,
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
    /// A watchdog whose thread, named `name`, starts when it is first armed.
    pub fn new(name: String) -> Watchdog {
        Watchdog {
            name,
            shared: Arc::default(),
            thread: Mutex::new(None),
        }
    }

    /// Arms the watchdog for a step running on the calling thread. Fails only when its thread cannot
    /// be started: the step must not run unwatched.
    pub fn arm(
        &self,
        deadline: Instant,
        cpu_limit: Duration,
        isolate: IsolateHandle,
    ) -> std::io::Result<Armed<'_>> {
        let cpu = thread_cpu_clock().map(|clock| (clock, clock_now(clock) + cpu_limit));
        let (lock, cv) = &*self.shared;
        {
            let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
            st.armed = Some(Arming {
                deadline,
                isolate,
                cpu,
                cpu_check: Instant::now() + cpu_limit,
            });
            st.fired = None;
        }
        let mut thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if thread.is_some() {
            cv.notify_one();
        } else {
            let shared = self.shared.clone();
            let started = thread::Builder::new()
                .name(self.name.clone())
                .spawn(move || watch(&shared));
            match started {
                Ok(t) => *thread = Some(t),
                Err(e) => {
                    lock.lock().unwrap_or_else(|e| e.into_inner()).armed = None;
                    return Err(e);
                }
            }
        }
        Ok(Armed(self))
    }
}

impl Armed<'_> {
    /// Not woken for this: it wakes at the old deadline, if it still runs then, and finds nothing to do;
    /// a step process has long exited by then.
    pub fn disarm(self) -> Option<Fired> {
        let (lock, _) = &*self.0.shared;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        st.armed = None;
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
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::runtime;

    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim_end() == name)
            .count()
    }

    /// The count of threads named `name` once it is `want` (a new thread names itself when it starts),
    /// or whatever it is after five seconds.
    fn settled_threads(name: &str, want: usize) -> usize {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let n = threads_named(name);
            if n == want || Instant::now() > until {
                return n;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Its thread starts with the first arm and serves every later one; a disarm does not wake it,
    /// so the next arm must: here the thread sleeps towards a deadline a minute away when it is armed
    /// again for 200 ms, and still stops the loop in time.
    #[test]
    fn starts_its_thread_when_first_armed_and_stops_js_at_every_deadline() {
        runtime::init_platform();
        let tokio_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _enter = tokio_rt.enter();
        let mut step =
            runtime::create(64 << 20, runtime::BufferBudget::new(64 << 20)).expect("step runtime");
        let isolate = step.js.v8_isolate().thread_safe_handle();
        let name = "cs-wd-unit";
        let dog = Watchdog::new(name.into());
        assert_eq!(threads_named(name), 0, "a thread before the first arm");

        let minute = Duration::from_secs(60);
        let far = dog
            .arm(Instant::now() + minute, minute, isolate.clone())
            .unwrap();
        assert_eq!(settled_threads(name, 1), 1);
        assert_eq!(far.disarm(), None);

        let started = Instant::now();
        let near = dog
            .arm(
                Instant::now() + Duration::from_millis(200),
                minute,
                isolate.clone(),
            )
            .unwrap();
        let ran = step.js.execute_script("loop.js", "for (;;) {}");
        assert!(ran.is_err(), "the loop ended by itself");
        assert_eq!(near.disarm(), Some(Fired::Wall));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "stopped only after {:?}",
            started.elapsed()
        );
        assert_eq!(
            settled_threads(name, 1),
            1,
            "a second thread for the second arm"
        );
        step.js.v8_isolate().cancel_terminate_execution();
        drop(dog);
        assert_eq!(
            settled_threads(name, 0),
            0,
            "the thread outlived its watchdog"
        );
    }
}
