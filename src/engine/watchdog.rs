//! Wall-time enforcement for JS that never yields. A tokio timer cannot fire while an infinite loop holds
//! the worker thread, so each worker has a companion thread that terminates the isolate at the deadline.

use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Instant;

use deno_core::v8::IsolateHandle;

#[derive(Default)]
struct State {
    armed: Option<(Instant, IsolateHandle)>,
    fired: bool,
    shutdown: bool,
}

pub struct Watchdog {
    shared: Arc<(Mutex<State>, Condvar)>,
    thread: Option<thread::JoinHandle<()>>,
}

/// The watchdog armed for one step. `disarm` says whether the deadline was hit.
pub struct Armed<'a>(&'a Watchdog);

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

    pub fn arm(&self, deadline: Instant, isolate: IsolateHandle) -> Armed<'_> {
        let (lock, cv) = &*self.shared;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        st.armed = Some((deadline, isolate));
        st.fired = false;
        cv.notify_one();
        Armed(self)
    }
}

impl Armed<'_> {
    pub fn disarm(self) -> bool {
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
        let Some((deadline, _)) = &st.armed else {
            st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        let now = Instant::now();
        if now >= *deadline {
            if let Some((_, isolate)) = st.armed.take() {
                isolate.terminate_execution();
            }
            st.fired = true;
        } else {
            let wait = *deadline - now;
            st = cv
                .wait_timeout(st, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
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
