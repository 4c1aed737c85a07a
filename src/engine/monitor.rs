//! The supervisor's watch over busy worker processes: the backstop for everything a worker cannot be
//! trusted to stop by itself. Every few milliseconds it reads each busy worker's resident memory (from
//! `/proc`) and its CPU time (from its CPU-time clock), and kills (SIGKILL) a worker that
//! - grew past its baseline plus the step's memory limit (`memory`): this counts what nothing inside
//!   the worker counts (WebAssembly memories, resizable ArrayBuffers, Blobs, V8's own zones);
//! - used more CPU time than the step may, plus a grace (`timeout`);
//! - still runs a short grace after its deadline, or after the gateway told it to stop: native code
//!   that ignores V8's termination, such as a deep `JSON.parse` (`timeout`, or the halt's `limit`).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How often busy workers are looked at.
const TICK: Duration = Duration::from_millis(2);
/// How often idle workers are looked at: they have no reason to grow, and a slow look costs nothing.
const IDLE_TICK: Duration = Duration::from_millis(100);
/// How many of a process's threads the monitor opens when its main thread reads as empty, and how
/// often at most it lists them (`Watch::resident_bytes`).
const THREADS_READ: usize = 64;
const RELIST: Duration = Duration::from_millis(50);
/// How long past a deadline a worker may take to stop by itself.
pub const GRACE: Duration = Duration::from_millis(200);

/// Why the monitor killed a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kill {
    Memory,
    Cpu,
    Deadline,
}

pub struct Watch {
    pub pid: i32,
    /// A pidfd of `pid`: signals go through it, so a pid reused once the process is reaped (a step
    /// process's by its worker) is never hit, and it says whether the process has exited ([`alive`]).
    pub pidfd: Option<Arc<std::os::fd::OwnedFd>>,
    /// `pid`'s `/proc/PID/statm`, opened once for the process (see [`resident_bytes_in`]).
    pub statm: Arc<std::fs::File>,
    /// A busy worker is looked at every `TICK`; an idle one every `IDLE_TICK`.
    pub idle: bool,
    /// Resident bytes the worker may reach.
    pub max_rss: u64,
    pub max_cpu: Duration,
    /// CPU time the worker had used when the step started.
    pub cpu_start: Duration,
    pub kill_at: Instant,
}

impl Watch {
    /// The watched process's resident memory. `statm` is its main thread's: a process whose main
    /// thread has ended while another runs on (no honest worker or step process does that; one taken
    /// over could, to grow unseen) reads as empty there, so a live process that does is read through
    /// another thread's, as they share its memory (`threads` keeps which). A process that is exiting
    /// also reads as empty, and so do its threads.
    fn resident_bytes(&self, threads: &mut ThreadRead, now: Instant) -> Option<u64> {
        let main = resident_bytes_in(&self.statm)?;
        if main > 0 || !alive(self) {
            return Some(main);
        }
        let kept = threads.statm.as_ref().and_then(resident_bytes_in);
        if let Some(bytes) = kept.filter(|&b| b > 0) {
            return Some(bytes);
        }
        // Listing the threads costs up to half a millisecond for a process with a thousand of them:
        // at most every `RELIST`, and at most `THREADS_READ` opened, the first that reads as more
        // than empty kept.
        if threads
            .listed
            .is_some_and(|at| now.duration_since(at) < RELIST)
        {
            return Some(0);
        }
        threads.listed = Some(now);
        threads.statm = None;
        let listing = std::fs::read_dir(format!("/proc/{}/task", self.pid)).ok()?;
        for thread in listing.take(THREADS_READ) {
            let Some(statm) = thread
                .ok()
                .and_then(|t| std::fs::File::open(t.path().join("statm")).ok())
            else {
                continue;
            };
            if let Some(bytes) = resident_bytes_in(&statm).filter(|&b| b > 0) {
                threads.statm = Some(statm);
                return Some(bytes);
            }
        }
        Some(0)
    }
}

/// What the monitor keeps to read a process whose main thread reads as empty (see
/// `Watch::resident_bytes`): the `statm` of the thread that last read as more, and when the threads
/// were last listed.
#[derive(Default)]
struct ThreadRead {
    statm: Option<std::fs::File>,
    listed: Option<Instant>,
}

/// Where the monitor writes why it killed a worker.
type KillSlot = Arc<Mutex<Option<Kill>>>;

#[derive(Default)]
struct State {
    /// Each watch, where the monitor writes its verdict, when it is next looked at, and how its
    /// process is read when its main thread reads as empty.
    watched: HashMap<u64, (Watch, KillSlot, Instant, ThreadRead)>,
    next: u64,
    shutdown: bool,
}

/// One monitor per executor. Cheap to clone.
#[derive(Clone)]
pub struct Monitor {
    shared: Arc<(Mutex<State>, Condvar)>,
}

/// A worker under watch; dropping it ends the watch.
pub struct Watched {
    monitor: Monitor,
    key: u64,
    killed: KillSlot,
}

impl Watched {
    /// Ends the watch and says why the monitor killed the worker, if it did. The watch is removed
    /// under the monitor's lock first, so no kill can follow the answer.
    pub fn finish(self) -> Option<Kill> {
        self.monitor.lock().watched.remove(&self.key);
        let killed = *self.killed.lock().unwrap_or_else(|e| e.into_inner());
        killed
    }

    /// Moves the kill deadline earlier (a halted step gets a grace, not its whole wall time).
    pub fn kill_by(&self, at: Instant) {
        let mut st = self.monitor.lock();
        if let Some((w, _, _, _)) = st.watched.get_mut(&self.key) {
            w.kill_at = w.kill_at.min(at);
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.monitor.lock().watched.remove(&self.key);
    }
}

impl Monitor {
    pub fn start() -> std::io::Result<Monitor> {
        let monitor = Monitor {
            shared: Arc::default(),
        };
        let m = monitor.clone();
        thread::Builder::new()
            .name("codestep-monitor".into())
            .spawn(move || m.run())?;
        Ok(monitor)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn watch(&self, watch: Watch) -> Watched {
        let killed = Arc::new(Mutex::new(None));
        let mut st = self.lock();
        let key = st.next;
        st.next += 1;
        st.watched.insert(
            key,
            (watch, killed.clone(), Instant::now(), ThreadRead::default()),
        );
        drop(st);
        self.shared.1.notify_one();
        Watched {
            monitor: self.clone(),
            key,
            killed,
        }
    }

    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.shared.1.notify_one();
    }

    fn run(&self) {
        let mut st = self.lock();
        loop {
            if st.shutdown {
                return;
            }
            if st.watched.is_empty() {
                st = self.shared.1.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let now = Instant::now();
            let mut wake = now + IDLE_TICK;
            for (w, killed, due, threads) in st.watched.values_mut() {
                let mut slot = killed.lock().unwrap_or_else(|e| e.into_inner());
                if slot.is_some() {
                    continue;
                }
                if *due > now {
                    wake = wake.min(*due);
                    continue;
                }
                let every = if w.idle { IDLE_TICK } else { TICK };
                *due = now + every;
                wake = wake.min(*due);
                let verdict = if now >= w.kill_at {
                    Some(Kill::Deadline)
                } else if w
                    .resident_bytes(threads, now)
                    .is_some_and(|rss| rss > w.max_rss)
                {
                    Some(Kill::Memory)
                } else if cpu_time(w.pid)
                    .is_some_and(|c| c.saturating_sub(w.cpu_start) > w.max_cpu + GRACE)
                {
                    Some(Kill::Cpu)
                } else {
                    None
                };
                if let Some(v) = verdict {
                    kill(w);
                    *slot = Some(v);
                }
            }
            st = self
                .shared
                .1
                .wait_timeout(st, wake.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Whether the watched process may not have exited whole: its pidfd is not readable, or it has none
/// to tell. (Taken as alive, an exiting process only costs a look at its threads, which read as
/// empty too.)
fn alive(w: &Watch) -> bool {
    w.pidfd
        .as_ref()
        .is_none_or(|fd| pidfd_exited(fd) != Some(true))
}

/// A pidfd for `pid`, a process that cannot have been reaped yet (a child of this process, or a
/// child of one, checked by the caller).
pub fn pidfd_open(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags, and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a descriptor pidfd_open just returned, owned by nothing else.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether a pidfd's process has exited whole (the pidfd is readable), without waiting; `None` when
/// the poll fails.
pub fn pidfd_exited(fd: &std::os::fd::OwnedFd) -> Option<bool> {
    use std::os::fd::AsRawFd;
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one pollfd we own, without waiting.
    match unsafe { libc::poll(&mut poll, 1, 0) } {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// SIGKILL through a pidfd: it names that one process, alive or not, whatever reuses its pid.
pub fn kill_pidfd(fd: &std::os::fd::OwnedFd) {
    use std::os::fd::AsRawFd;
    // SAFETY: pidfd_send_signal on a pidfd we hold, with no siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
}

fn kill(w: &Watch) {
    match &w.pidfd {
        Some(fd) => kill_pidfd(fd),
        // kill(0) and kill(-1) would reach the supervisor's process group and every process of its
        // user: a worker's pid is never one of them, and is not signalled if it were.
        None if w.pid <= 1 => {}
        // SAFETY: kill(2) on a pid we started and have not yet reaped (the watch ends before the
        // supervisor waits for the process), so the pid is still ours.
        None => unsafe {
            libc::kill(w.pid, libc::SIGKILL);
        },
    }
}

fn page_size() -> u64 {
    static SIZE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *SIZE.get_or_init(|| unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64)
}

/// `/proc/PID/statm`, to read with [`resident_bytes_in`] as often as needed.
pub fn open_statm(pid: i32) -> Option<std::fs::File> {
    std::fs::File::open(format!("/proc/{pid}/statm")).ok()
}

/// Resident memory from an open `/proc/PID/statm`, read again from its start. The supervisor opens a
/// step process's once, for the monitor's looks and its own reads (about five a step), so each costs
/// one `pread` instead of an open, a read and a close. An open `/proc` file stays with the process it
/// was opened for, whatever later takes its pid: once that process is reaped, reads fail (one that has
/// exited and is not yet reaped reads as empty; see `Watch::resident_bytes`).
pub fn resident_bytes_in(statm: &std::fs::File) -> Option<u64> {
    let mut buf = [0u8; 256];
    let text = std::str::from_utf8(read_whole_at(statm, &mut buf)?).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// A small `/proc` file's text, read with one `pread` from its start. The kernel makes such a file
/// whole at each read from offset 0; a text that fills `buf` may be cut short, and is refused.
pub(super) fn read_whole_at<'a>(file: &std::fs::File, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    use std::os::unix::fs::FileExt;
    let n = file.read_at(buf, 0).ok()?;
    if n == buf.len() {
        return None;
    }
    Some(&buf[..n])
}

/// The parent's pid in `/proc/PID/stat`: the second field after the command name (which is in
/// parentheses and may hold spaces; the state is the first).
pub fn parent_of(pid: i32) -> Option<i32> {
    let file = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut buf = [0u8; 1024];
    let text = read_whole_at(&file, &mut buf)?;
    // The command name need not be UTF-8 (the kernel cuts it at 15 bytes, a character's middle
    // included); the fields after it are ASCII.
    let after = text.iter().rposition(|&b| b == b')')? + 1;
    let rest = std::str::from_utf8(text.get(after..)?).ok()?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// A process's CPU time (all its threads, those that ended included), from its CPU-time clock: any
/// process's can be read, to the nanosecond, without formatting `/proc/PID/stat` (whose ticks are
/// also coarser).
pub fn cpu_time(pid: i32) -> Option<Duration> {
    if pid <= 0 {
        return None;
    }
    // The kernel's encoding of a process's CPU-time clock (`MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)`),
    // which `clock_getcpuclockid` returns for another process.
    let clock = ((!pid) << 3) | 2;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec we own.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory_and_cpu() {
        let pid = std::process::id() as i32;
        assert!(resident_bytes_in(&open_statm(pid).unwrap()).unwrap() > 1 << 20);
        let mut x = 0u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(cpu_time(pid).unwrap() > Duration::ZERO, "{x}");
        assert_eq!(parent_of(pid), Some(unsafe { libc::getppid() }));
        assert!(cpu_time(-5).is_none() && cpu_time(0).is_none());
    }

    /// An open `statm` reads its own process each time, and nothing once that process is gone: it
    /// never reads whatever takes the pid next, as opening `/proc/PID/statm` again could.
    #[test]
    fn an_open_statm_reads_its_process_until_it_is_gone() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let statm = open_statm(pid).expect("the child's statm");
        let first = resident_bytes_in(&statm).expect("a live process's memory");
        assert!(first > 0);
        // Read again from the start, not from where the last read ended.
        assert!(resident_bytes_in(&statm).is_some_and(|b| b > 0));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(resident_bytes_in(&statm), None);
    }

    /// A child running `program -c script`, and the first line it printed (once its set-up is done).
    fn child_after_first_line(program: &str, script: &str) -> (std::process::Child, String) {
        let mut child = std::process::Command::new(program)
            .args(["-c", script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        (child, line)
    }

    fn python_child(script: &str) -> std::process::Child {
        child_after_first_line("python3", script).0
    }

    /// A command name is any 15 bytes, here not UTF-8 and with a parenthesis and a space: the
    /// parent is still read (it is what the supervisor checks a step process by).
    #[test]
    fn a_parent_is_read_whatever_the_command_name() {
        let mut child = python_child(
            "import ctypes, sys, time\n\
             ctypes.CDLL(None).prctl(15, b'\\xff) (\\xfe x', 0, 0, 0)\n\
             print(flush=True); time.sleep(30)",
        );
        let pid = child.id() as i32;
        let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap();
        let parent = parent_of(pid);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            std::str::from_utf8(&stat).is_err(),
            "the name was not set: {:?}",
            String::from_utf8_lossy(&stat)
        );
        assert_eq!(parent, Some(std::process::id() as i32));
    }

    /// A process whose main thread has ended reads as empty in its `statm`; its memory is read
    /// through another thread's, listed once and then kept, however many threads it has.
    #[test]
    fn a_process_without_its_main_thread_is_read_through_another() {
        if std::env::consts::ARCH != "x86_64" {
            return; // the child calls SYS_exit by its x86-64 number
        }
        let mut child = python_child(
            "import ctypes, threading, time\n\
             keep = b'\\x01' * (48 << 20)\n\
             for _ in range(200): threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n\
             print(flush=True)\n\
             ctypes.CDLL(None).syscall(60, 0)",
        );
        let pid = child.id() as i32;
        let w = Watch {
            pid,
            pidfd: pidfd_open(pid).map(Arc::new),
            statm: Arc::new(open_statm(pid).unwrap()),
            idle: false,
            max_rss: 0,
            max_cpu: Duration::ZERO,
            cpu_start: Duration::ZERO,
            kill_at: Instant::now(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        assert!(w.pidfd.is_some());
        while resident_bytes_in(&w.statm) != Some(0) {
            assert!(Instant::now() < deadline, "the main thread did not end");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut threads = ThreadRead::default();
        let first = w.resident_bytes(&mut threads, Instant::now());
        let listed = threads.listed;
        let again = w.resident_bytes(&mut threads, Instant::now());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(first.is_some_and(|b| b > 40 << 20), "{first:?}");
        assert_eq!(again, first);
        assert!(threads.statm.is_some(), "no thread's statm was kept");
        assert_eq!(threads.listed, listed, "the threads were listed again");
    }

    #[test]
    fn a_proc_text_longer_than_the_buffer_is_refused() {
        let stat = std::fs::File::open("/proc/self/stat").unwrap();
        let mut small = [0u8; 16];
        assert_eq!(read_whole_at(&stat, &mut small), None);
        let mut buf = [0u8; 1024];
        let text = String::from_utf8_lossy(read_whole_at(&stat, &mut buf).unwrap()).into_owned();
        assert!(
            text.starts_with(&format!("{} (", std::process::id())),
            "{text}"
        );
        assert_eq!(
            parent_of(std::process::id() as i32),
            Some(unsafe { libc::getppid() })
        );
    }

    /// The CPU time of a process this one did not start counts too (the supervisor reads step
    /// processes, which their worker forked): here, a busy child of a child.
    #[test]
    fn reads_another_process_cpu_time() {
        let (mut sh, line) =
            child_after_first_line("sh", "sh -c 'while :; do :; done' & echo $!; wait");
        let busy: i32 = line.trim().parse().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let used = cpu_time(busy);
        unsafe { libc::kill(busy, libc::SIGKILL) };
        let _ = sh.wait();
        let used = used.expect("a live process's CPU time");
        assert!(used > Duration::from_millis(50), "{used:?}");
        assert!(used < Duration::from_secs(5), "{used:?}");
        assert!(open_statm(-5).is_none());
    }
}
