//! Seccomp confinement for worker processes.
//!
//! A worker process (this same binary) sets up V8, its tokio runtime, its watchdog thread and its first
//! isolate, and then calls [`confine`] on itself before it runs any untrusted step. From then on even
//! native code running inside the worker (a V8 bug turned into code execution) cannot reach the network,
//! the file system or another process on its own: its one way out is the Unix socket to the supervisor
//! that it inherited, which only speaks the worker protocol.
//!
//! # Why a deny-list
//!
//! The filter allows every system call except the ones listed below. An allow-list would be tighter, but
//! V8, glibc, the Rust standard library and tokio together use a long and version-dependent set of calls
//! (memory protection keys, `membarrier`, `rseq`, `map_shadow_stack`, futex variants, new `epoll` and
//! `statx` forms...), and a call missing from an allow-list kills or breaks a worker in ways that show up
//! only on some kernels, some glibc versions or some V8 tiers. What matters for a step is that it cannot
//! make network connections, open files, start programs or touch other processes; those are a small,
//! stable set of calls, refused here. Two guards cover the usual weaknesses of a deny-list:
//!
//! - any system call numbered above the newest one this list was reviewed against
//!   ([`LAST_REVIEWED_SYSCALL`], `file_setattr`, Linux 6.17) fails with `ENOSYS`, as on an older kernel, so
//!   a syscall added to Linux later (for example another way to open a path) is not allowed by default.
//!   This also refuses the x32 ABI on x86_64 (numbers with bit 30 set), which would otherwise reach the
//!   same kernel functions under numbers that the list does not name;
//! - a call made through another architecture's ABI (`int 0x80` on x86_64) kills the process, since its
//!   numbers mean other calls.
//!
//! # What is refused
//!
//! With `EPERM` unless said otherwise:
//!
//! - **network**: `socket`, `socketpair`, `connect`, `bind`, `listen`, `accept`, `accept4`. Reading and
//!   writing an already open socket (`read`, `write`, `sendmsg`, `recvmsg`, ...) stays allowed: that is the
//!   supervisor link, a connected `SOCK_STREAM` socket, on which a destination address is refused by
//!   the kernel (`EISCONN`).
//! - **programs and processes**: `execve`, `execveat`, `fork`, `vfork`, `clone` unless it makes a thread
//!   (`CLONE_THREAD` set) and asks for no new namespace, `clone3` with **`ENOSYS`** (glibc then falls back
//!   to `clone` for threads; `clone3` passes its flags in memory, where a filter cannot see them).
//! - **other processes**: `ptrace`, `process_vm_readv`, `process_vm_writev`, `kcmp`, `pidfd_open`,
//!   `pidfd_getfd`, `pidfd_send_signal`, `process_madvise`, `process_mrelease`, `get_robust_list`,
//!   `move_pages`, `migrate_pages`, `tkill`; `kill`, `tgkill`, `rt_sigqueueinfo` and `rt_tgsigqueueinfo`
//!   unless aimed at this process (its pid is built into the filter), so that `kill(-1, SIGKILL)` or a
//!   signal to the supervisor fails; `prlimit64` unless its pid is 0 or this process.
//! - **files**: `open`, `openat`, `openat2`, `creat`, `open_by_handle_at`, `name_to_handle_at`,
//!   `open_tree`, `open_tree_attr`, `mknod`, `mknodat`, `link`, `linkat`, `symlink`, `symlinkat`, `unlink`,
//!   `unlinkat`, `rename`, `renameat`, `renameat2`, `mkdir`, `mkdirat`, `rmdir`, `chmod`, `fchmod`,
//!   `fchmodat`, `fchmodat2`, `chown`, `lchown`, `fchown`, `fchownat`, `truncate`, `utime`, `utimes`,
//!   `futimesat`, `utimensat`, `setxattr`, `lsetxattr`, `removexattr`, `lremovexattr`, `setxattrat`,
//!   `removexattrat`, `file_setattr`, `inotify_add_watch`, `fanotify_init`, `fanotify_mark`, `uselib`,
//!   `acct`, `quotactl`, `quotactl_fd`, `swapon`, `swapoff`. Calls that only read metadata by path
//!   (`stat`, `statx`, `access`, `readlink`, `getxattr`...) stay allowed: they open nothing, and glibc and
//!   Rust use their `fd` forms.
//! - **mounts and namespaces**: `mount`, `umount2`, `pivot_root`, `chroot`, `setns`, `unshare`, `fsopen`,
//!   `fsconfig`, `fsmount`, `fspick`, `move_mount`, `mount_setattr`, `statmount`, `listmount`.
//! - **kernel attack surface**: `bpf`, `perf_event_open`, `userfaultfd`, `io_uring_setup`,
//!   `io_uring_enter`, `io_uring_register` (io_uring would also perform refused calls on our behalf),
//!   `keyctl`, `add_key`, `request_key`, `personality`, `modify_ldt`, `iopl`, `ioperm`, `kexec_load`,
//!   `kexec_file_load`, `init_module`, `finit_module`, `delete_module`, `reboot`, `syslog`, `vhangup`,
//!   `sethostname`, `setdomainname`, `settimeofday`, `clock_settime`, `clock_adjtime`, `adjtimex`,
//!   `lsm_set_self_attr`; `ioctl` with `TIOCSTI` or `TIOCLINUX` (typing into a terminal the worker may
//!   have inherited as stdin).
//! - **IPC with other processes**: System V `shmget`, `shmat`, `shmctl`, `msgget`, `msgsnd`, `msgrcv`,
//!   `msgctl`, `semget`, `semop`, `semtimedop`, `semctl`, and POSIX `mq_open`, `mq_unlink`: ways to talk
//!   to other processes that do not go through a socket.
//!
//! - **memory the supervisor's monitor cannot see**: `memfd_create` (pages written to a memfd and never
//!   mapped are not resident, so the resident-memory backstop would miss them), and `fcntl` with
//!   `F_SETPIPE_SZ` (a pipe grown past its default holds kernel memory no one counts).
//!
//! `ftruncate`, `fallocate` and `fchdir` stay allowed: they act on descriptors the process already
//! holds, and with no way to open a file or make a memfd, those are its socket, pipes and eventfds.
//!
//! `PR_SET_NO_NEW_PRIVS` is set first (seccomp requires it without `CAP_SYS_ADMIN`, and it keeps a
//! set-uid program from ever gaining privileges here), and the filters are applied to every thread of
//! the process at once (`SECCOMP_FILTER_FLAG_TSYNC`): V8's platform threads, tokio and the watchdog
//! already exist when [`confine`] is called.
//!
//! Because `open` is refused, V8's default seeding of `Math.random` and its hash seeds (it reads
//! `/dev/urandom` with `fopen`) would fall back to a time-based seed in isolates made after confinement;
//! [`confine`] therefore hands V8 an entropy source that uses `getrandom(2)`.

use std::collections::BTreeMap;
use std::io;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

/// The newest system call number the refusal list was reviewed against (`file_setattr`, Linux 6.17;
/// numbers from 424 on are the same on x86_64 and aarch64). Calls numbered above it fail with `ENOSYS`.
/// Raise it only after checking the calls added since against the list above.
pub const LAST_REVIEWED_SYSCALL: i64 = 469;

/// Why [`confine`] did not confine the process.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("worker confinement is only built for x86_64 and aarch64 Linux, not {0}")]
    UnsupportedArch(&'static str),
    #[error("could not build the seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    #[error("could not set PR_SET_NO_NEW_PRIVS, which seccomp needs: {0}")]
    NoNewPrivs(#[source] io::Error),
    #[error("the kernel refused the {filter} seccomp filter: {source}{}", partly_note(*.partly_confined))]
    Install {
        filter: &'static str,
        /// Earlier filters are in place: the process is partly confined and must not run steps.
        partly_confined: bool,
        #[source]
        source: seccompiler::Error,
    },
}

fn partly_note(partly_confined: bool) -> &'static str {
    if partly_confined {
        " (earlier filters are in place: the process is only partly confined and must not run steps)"
    } else {
        ""
    }
}

/// Whether this kernel can confine workers (seccomp filter mode available). Err says why not.
///
/// It does not confine the caller: after checking that the kernel has seccomp filters with the actions
/// used, it forks a short-lived child that installs the very filters [`confine`] would, checks that
/// `socket` is refused, and exits. The caller may be multi-threaded: the child only makes raw system
/// calls before `_exit`.
pub fn available() -> Result<(), String> {
    let arch = target_arch().ok_or_else(|| {
        format!(
            "worker confinement is only built for x86_64 and aarch64 Linux, not {}",
            std::env::consts::ARCH
        )
    })?;
    // SAFETY: PR_GET_SECCOMP takes no pointers.
    if unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) } < 0 {
        return Err(format!(
            "this kernel has no seccomp support (prctl(PR_GET_SECCOMP): {})",
            io::Error::last_os_error()
        ));
    }
    for (name, action) in [
        ("allow", libc::SECCOMP_RET_ALLOW),
        ("errno", libc::SECCOMP_RET_ERRNO),
        ("kill_process", libc::SECCOMP_RET_KILL_PROCESS),
    ] {
        let action: u32 = action;
        // SAFETY: SECCOMP_GET_ACTION_AVAIL reads one u32 through the pointer, which is valid.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_GET_ACTION_AVAIL as libc::c_ulong,
                0 as libc::c_ulong,
                &action as *const u32,
            )
        };
        if rc != 0 {
            return Err(format!(
                "this kernel cannot run seccomp filters with the {name} action (Linux 4.14 or later with \
                 CONFIG_SECCOMP_FILTER is needed): {}",
                io::Error::last_os_error()
            ));
        }
    }
    let filters = build_filters(arch, current_pid()).map_err(|e| e.to_string())?;
    trial(&filters)
}

/// Confines the calling process (all its threads). After this returns Ok, the refusals above hold.
///
/// On `Err` nothing may have been installed, or (for [`SandboxError::Install`] with `partly_confined`)
/// only part of it: either way the process must not run a step.
pub fn confine() -> Result<(), SandboxError> {
    install(Part::Whole)
}

/// Confines a worker that forks a process for each step: every refusal but those of
/// [`confine_step_process`], which a step process adds before it runs anything of a step. The worker
/// itself runs no step code; it only forks and waits.
pub fn confine_forking() -> Result<(), SandboxError> {
    let arch = target_arch().ok_or(SandboxError::UnsupportedArch(std::env::consts::ARCH))?;
    let _ = STEP_PROCESS_PART.set(step_process_program(arch, PID_PLACEHOLDER)?);
    install(Part::Forking)
}

/// In a step process forked by a worker confined with [`confine_forking`]: adds the refusals the
/// worker lacks (making processes; signals and resource limits aimed at another process, this
/// process's pid built in). With the inherited filters, the process is then confined as by [`confine`].
/// The program is the one the worker built, with this process's pid written in (building it here cost
/// about 1 % of a trivial step's CPU).
pub fn confine_step_process() -> Result<(), SandboxError> {
    let arch = target_arch().ok_or(SandboxError::UnsupportedArch(std::env::consts::ARCH))?;
    let program = match STEP_PROCESS_PART.get() {
        Some(prebuilt) => with_pid(prebuilt, current_pid()),
        None => step_process_program(arch, current_pid())?,
    };
    seccompiler::apply_filter_all_threads(&program).map_err(|source| SandboxError::Install {
        filter: "per-process-calls",
        partly_confined: true,
        source,
    })?;
    Ok(())
}

/// The per-process part of a forking worker's filter, built once in the worker for a pid no process
/// can have (above the kernel's largest, 2^22), which [`with_pid`] replaces.
static STEP_PROCESS_PART: std::sync::OnceLock<BpfProgram> = std::sync::OnceLock::new();
const PID_PLACEHOLDER: libc::pid_t = 0x5eed_c0de;

fn step_process_program(arch: TargetArch, pid: libc::pid_t) -> Result<BpfProgram, SandboxError> {
    let mut filters = build_part(arch, pid, Part::StepProcess)?;
    Ok(filters.remove(0).1)
}

/// The program with the placeholder pid, in every instruction that compares against it, replaced.
fn with_pid(program: &[sock_filter], pid: libc::pid_t) -> BpfProgram {
    program
        .iter()
        .map(|i| {
            let k = if i.code == BPF_JMP_JEQ_K && i.k == PID_PLACEHOLDER as u32 {
                pid as u32
            } else {
                i.k
            };
            sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k,
            }
        })
        .collect()
}

fn install(part: Part) -> Result<(), SandboxError> {
    let arch = target_arch().ok_or(SandboxError::UnsupportedArch(std::env::consts::ARCH))?;
    let filters = build_part(arch, current_pid(), part)?;
    // Before the filters, so that no isolate is ever seeded from the clock.
    deno_core::v8::V8::set_entropy_source(v8_entropy);
    // SAFETY: PR_SET_NO_NEW_PRIVS takes no pointers.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(SandboxError::NoNewPrivs(io::Error::last_os_error()));
    }
    for (i, (filter, program)) in filters.iter().enumerate() {
        seccompiler::apply_filter_all_threads(program).map_err(|source| SandboxError::Install {
            filter,
            partly_confined: i > 0,
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
static V8_ENTROPY_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// V8's source of seeds for `Math.random`, hash seeds and address hints: `getrandom(2)`, which the
/// filter allows, instead of V8's own `fopen("/dev/urandom")`, which it refuses.
fn v8_entropy(buf: &mut [u8]) -> bool {
    #[cfg(test)]
    V8_ENTROPY_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    getrandom::fill(buf).is_ok()
}

fn current_pid() -> libc::pid_t {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

fn target_arch() -> Option<TargetArch> {
    if cfg!(target_arch = "x86_64") {
        Some(TargetArch::x86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(TargetArch::aarch64)
    } else {
        None
    }
}

/// The filters to install, in order, each with a name for error messages.
type Filters = Vec<(&'static str, BpfProgram)>;

/// When a listed call is refused.
#[derive(Clone, Copy, Debug)]
enum When {
    Always,
    /// `clone` that makes something other than a thread, or a new namespace.
    CloneNotThread,
    /// The pid in this argument is not this process.
    PidNotSelf(u8),
    /// The pid in this argument is neither 0 (the caller) nor this process.
    PidNotZeroOrSelf(u8),
    /// `ioctl` requests that push input into a terminal.
    TtyInjection,
    /// `fcntl(F_SETPIPE_SZ)`: pipe buffers are memory the monitor does not count.
    PipeResize,
}

/// System call numbers from 424 on are shared by x86_64 and aarch64; these are not (all) in `libc` yet.
mod nr {
    pub const FCHMODAT2: i64 = 452;
    pub const STATMOUNT: i64 = 457;
    pub const LISTMOUNT: i64 = 458;
    pub const LSM_SET_SELF_ATTR: i64 = 460;
    pub const SETXATTRAT: i64 = 463;
    pub const REMOVEXATTRAT: i64 = 466;
    pub const OPEN_TREE_ATTR: i64 = 467;
    pub const FILE_SETATTR: i64 = 469;
}

/// `("name", sys::name)` for each name.
macro_rules! calls {
    ($($name:ident),* $(,)?) => {
        [$((stringify!($name), sys::$name)),*]
    };
}

/// The calls in the tables, under their plain names.
#[allow(non_upper_case_globals)]
mod sys {
    macro_rules! reexport {
        ($($name:ident => $sys:ident),* $(,)?) => {
            $(pub const $name: i64 = libc::$sys as i64;)*
        };
    }
    reexport! {
        socket => SYS_socket, socketpair => SYS_socketpair, connect => SYS_connect, bind => SYS_bind,
        listen => SYS_listen, accept => SYS_accept, accept4 => SYS_accept4,
        execve => SYS_execve, execveat => SYS_execveat,
        ptrace => SYS_ptrace, process_vm_readv => SYS_process_vm_readv,
        process_vm_writev => SYS_process_vm_writev, kcmp => SYS_kcmp, pidfd_open => SYS_pidfd_open,
        pidfd_getfd => SYS_pidfd_getfd, pidfd_send_signal => SYS_pidfd_send_signal,
        process_madvise => SYS_process_madvise, process_mrelease => SYS_process_mrelease,
        get_robust_list => SYS_get_robust_list, move_pages => SYS_move_pages,
        migrate_pages => SYS_migrate_pages, tkill => SYS_tkill,
        openat => SYS_openat, openat2 => SYS_openat2, open_by_handle_at => SYS_open_by_handle_at,
        name_to_handle_at => SYS_name_to_handle_at, open_tree => SYS_open_tree, mknodat => SYS_mknodat,
        linkat => SYS_linkat, symlinkat => SYS_symlinkat, unlinkat => SYS_unlinkat,
        renameat2 => SYS_renameat2, mkdirat => SYS_mkdirat, fchmod => SYS_fchmod,
        fchmodat => SYS_fchmodat, fchown => SYS_fchown, fchownat => SYS_fchownat,
        truncate => SYS_truncate, utimensat => SYS_utimensat, setxattr => SYS_setxattr,
        lsetxattr => SYS_lsetxattr, removexattr => SYS_removexattr, lremovexattr => SYS_lremovexattr,
        inotify_add_watch => SYS_inotify_add_watch, fanotify_init => SYS_fanotify_init,
        fanotify_mark => SYS_fanotify_mark, acct => SYS_acct, quotactl => SYS_quotactl,
        quotactl_fd => SYS_quotactl_fd, swapon => SYS_swapon, swapoff => SYS_swapoff,
        mount => SYS_mount, umount2 => SYS_umount2, pivot_root => SYS_pivot_root, chroot => SYS_chroot,
        setns => SYS_setns, unshare => SYS_unshare, fsopen => SYS_fsopen, fsconfig => SYS_fsconfig,
        fsmount => SYS_fsmount, fspick => SYS_fspick, move_mount => SYS_move_mount,
        mount_setattr => SYS_mount_setattr,
        bpf => SYS_bpf, perf_event_open => SYS_perf_event_open, userfaultfd => SYS_userfaultfd,
        io_uring_setup => SYS_io_uring_setup, io_uring_enter => SYS_io_uring_enter,
        io_uring_register => SYS_io_uring_register, keyctl => SYS_keyctl, add_key => SYS_add_key,
        request_key => SYS_request_key, personality => SYS_personality, kexec_load => SYS_kexec_load,
        kexec_file_load => SYS_kexec_file_load, init_module => SYS_init_module,
        finit_module => SYS_finit_module, delete_module => SYS_delete_module, reboot => SYS_reboot,
        syslog => SYS_syslog, vhangup => SYS_vhangup, sethostname => SYS_sethostname,
        setdomainname => SYS_setdomainname, settimeofday => SYS_settimeofday,
        clock_settime => SYS_clock_settime, clock_adjtime => SYS_clock_adjtime, adjtimex => SYS_adjtimex,
        shmget => SYS_shmget, shmat => SYS_shmat, shmctl => SYS_shmctl, msgget => SYS_msgget,
        msgsnd => SYS_msgsnd, msgrcv => SYS_msgrcv, msgctl => SYS_msgctl, semget => SYS_semget,
        semop => SYS_semop, semtimedop => SYS_semtimedop, semctl => SYS_semctl,
        mq_open => SYS_mq_open, mq_unlink => SYS_mq_unlink, memfd_create => SYS_memfd_create,
        fcntl => SYS_fcntl,
        clone => SYS_clone, kill => SYS_kill, tgkill => SYS_tgkill,
        rt_sigqueueinfo => SYS_rt_sigqueueinfo, rt_tgsigqueueinfo => SYS_rt_tgsigqueueinfo,
        prlimit64 => SYS_prlimit64, ioctl => SYS_ioctl,
    }
    #[cfg(target_arch = "x86_64")]
    reexport! {
        open => SYS_open, creat => SYS_creat, fork => SYS_fork, vfork => SYS_vfork, mknod => SYS_mknod,
        link => SYS_link, symlink => SYS_symlink, unlink => SYS_unlink, rename => SYS_rename,
        renameat => SYS_renameat, mkdir => SYS_mkdir, rmdir => SYS_rmdir, chmod => SYS_chmod,
        chown => SYS_chown, lchown => SYS_lchown, utime => SYS_utime, utimes => SYS_utimes,
        futimesat => SYS_futimesat, uselib => SYS_uselib, iopl => SYS_iopl, ioperm => SYS_ioperm,
        modify_ldt => SYS_modify_ldt,
    }
    pub const fchmodat2: i64 = super::nr::FCHMODAT2;
    pub const statmount: i64 = super::nr::STATMOUNT;
    pub const listmount: i64 = super::nr::LISTMOUNT;
    pub const lsm_set_self_attr: i64 = super::nr::LSM_SET_SELF_ATTR;
    pub const setxattrat: i64 = super::nr::SETXATTRAT;
    pub const removexattrat: i64 = super::nr::REMOVEXATTRAT;
    pub const open_tree_attr: i64 = super::nr::OPEN_TREE_ATTR;
    pub const file_setattr: i64 = super::nr::FILE_SETATTR;
}

/// Every refused call (but `clone3`, refused with `ENOSYS` by its own filter): name, number, and when.
fn refusals() -> Vec<(&'static str, i64, When)> {
    #[rustfmt::skip]
    let always = calls![
        // Network.
        socket, socketpair, connect, bind, listen, accept, accept4,
        // Programs and other processes.
        execve, execveat, ptrace, process_vm_readv, process_vm_writev, kcmp, pidfd_open, pidfd_getfd,
        pidfd_send_signal, process_madvise, process_mrelease, get_robust_list, move_pages, migrate_pages,
        tkill,
        // Files.
        openat, openat2, open_by_handle_at, name_to_handle_at, open_tree, open_tree_attr, mknodat,
        linkat, symlinkat, unlinkat, renameat2, mkdirat, fchmod, fchmodat, fchmodat2, fchown, fchownat,
        truncate, utimensat, setxattr, lsetxattr, removexattr, lremovexattr, setxattrat, removexattrat,
        file_setattr, inotify_add_watch, fanotify_init, fanotify_mark, acct, quotactl, quotactl_fd,
        swapon, swapoff,
        // Mounts and namespaces.
        mount, umount2, pivot_root, chroot, setns, unshare, fsopen, fsconfig, fsmount, fspick,
        move_mount, mount_setattr, statmount, listmount,
        // Kernel attack surface.
        bpf, perf_event_open, userfaultfd, io_uring_setup, io_uring_enter, io_uring_register, keyctl,
        add_key, request_key, personality, kexec_load, kexec_file_load, init_module, finit_module,
        delete_module, reboot, syslog, vhangup, sethostname, setdomainname, settimeofday, clock_settime,
        clock_adjtime, adjtimex, lsm_set_self_attr,
        // IPC that bypasses sockets.
        shmget, shmat, shmctl, msgget, msgsnd, msgrcv, msgctl, semget, semop, semtimedop, semctl,
        mq_open, mq_unlink,
        // Memory the supervisor's monitor cannot see.
        memfd_create,
    ];
    // Calls that aarch64 only has in their `*at` (or `clone`) form, and x86-only calls.
    #[cfg(target_arch = "x86_64")]
    #[rustfmt::skip]
    let legacy = calls![
        open, creat, fork, vfork, mknod, link, symlink, unlink, rename, renameat, mkdir, rmdir, chmod,
        chown, lchown, utime, utimes, futimesat, uselib, iopl, ioperm, modify_ldt,
    ];
    #[cfg(not(target_arch = "x86_64"))]
    let legacy: [(&'static str, i64); 0] = [];
    let conditional = [
        ("clone", sys::clone, When::CloneNotThread),
        ("kill", sys::kill, When::PidNotSelf(0)),
        ("tgkill", sys::tgkill, When::PidNotSelf(0)),
        ("rt_sigqueueinfo", sys::rt_sigqueueinfo, When::PidNotSelf(0)),
        (
            "rt_tgsigqueueinfo",
            sys::rt_tgsigqueueinfo,
            When::PidNotSelf(0),
        ),
        ("prlimit64", sys::prlimit64, When::PidNotZeroOrSelf(0)),
        ("ioctl", sys::ioctl, When::TtyInjection),
        ("fcntl", sys::fcntl, When::PipeResize),
    ];
    always
        .into_iter()
        .chain(legacy)
        .map(|(name, nr)| (name, nr, When::Always))
        .chain(conditional)
        .collect()
}

/// Namespace flags that `clone` must not carry even for a thread (`CLONE_NEWTIME` is only accepted by
/// `clone3` and `unshare`, both refused).
const CLONE_NAMESPACES: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

/// A 32-bit comparison: the arguments tested are `int`/`unsigned int` in the kernel, which ignores the
/// upper half of the register, so the filter must too.
fn cond(
    arg: u8,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, seccompiler::BackendError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
}

/// The rules under which a call is refused (no rule: always).
fn rules(when: When, pid: libc::pid_t) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    let pid = u64::from(pid as u32);
    Ok(match when {
        When::Always => Vec::new(),
        When::CloneNotThread => {
            let thread = libc::CLONE_THREAD as u32 as u64;
            let mut rules = vec![SeccompRule::new(vec![cond(
                0,
                SeccompCmpOp::MaskedEq(thread),
                0,
            )?])?];
            for flag in CLONE_NAMESPACES {
                let flag = flag as u32 as u64;
                rules.push(SeccompRule::new(vec![cond(
                    0,
                    SeccompCmpOp::MaskedEq(flag),
                    flag,
                )?])?);
            }
            rules
        }
        When::PidNotSelf(arg) => vec![SeccompRule::new(vec![cond(arg, SeccompCmpOp::Ne, pid)?])?],
        When::PidNotZeroOrSelf(arg) => vec![SeccompRule::new(vec![
            cond(arg, SeccompCmpOp::Ne, 0)?,
            cond(arg, SeccompCmpOp::Ne, pid)?,
        ])?],
        When::TtyInjection => [libc::TIOCSTI, libc::TIOCLINUX]
            .into_iter()
            .map(|req| SeccompRule::new(vec![cond(1, SeccompCmpOp::Eq, req as u32 as u64)?]))
            .collect::<Result<_, _>>()?,
        When::PipeResize => vec![SeccompRule::new(vec![cond(
            1,
            SeccompCmpOp::Eq,
            libc::F_SETPIPE_SZ as u32 as u64,
        )?])?],
    })
}

const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
const AUDIT_ARCH_AARCH64: u32 = 183 | 0x8000_0000 | 0x4000_0000;

fn audit_arch(arch: TargetArch) -> u32 {
    match arch {
        TargetArch::aarch64 => AUDIT_ARCH_AARCH64,
        _ => AUDIT_ARCH_X86_64,
    }
}

/// Builds the three filters for a process whose pid is `pid`:
/// 1. the refusal list (`EPERM`), compiled by seccompiler;
/// 2. `clone3` (`ENOSYS`), compiled by seccompiler (one filter has one match action);
/// 3. every number above [`LAST_REVIEWED_SYSCALL`] (`ENOSYS`): a range, which seccompiler cannot
///    express, so written by hand: seven BPF instructions, with the same architecture check.
///
/// Each filter sees every call; the kernel applies the strictest answer, and no call is answered by two.
fn build_filters(arch: TargetArch, pid: libc::pid_t) -> Result<Filters, SandboxError> {
    build_part(arch, pid, Part::Whole)
}

/// Which refusals a filter holds: all of them, or the two halves a forking worker splits them into.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Whole,
    /// All but [`per_process`]'s: for the worker that forks a process per step.
    Forking,
    /// Only [`per_process`]'s, for the step process: added to the filters it inherits.
    StepProcess,
}

/// The refusals that a worker forking step processes cannot have itself (making processes), or that
/// name a process (signals and resource limits aimed at anything but the caller): the step process
/// installs them, with its own pid, on top of the filters it inherits.
fn per_process(name: &str, when: When) -> bool {
    matches!(
        when,
        When::CloneNotThread | When::PidNotSelf(_) | When::PidNotZeroOrSelf(_)
    ) || matches!(name, "fork" | "vfork")
}

fn build_part(arch: TargetArch, pid: libc::pid_t, part: Part) -> Result<Filters, SandboxError> {
    let mut refused: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (name, nr, when) in refusals() {
        let included = match part {
            Part::Whole => true,
            Part::Forking => !per_process(name, when),
            Part::StepProcess => per_process(name, when),
        };
        if included {
            refused.insert(nr, rules(when, pid)?);
        }
    }
    let eperm = SeccompAction::Errno(libc::EPERM as u32);
    let enosys = SeccompAction::Errno(libc::ENOSYS as u32);
    let main: BpfProgram =
        SeccompFilter::new(refused, SeccompAction::Allow, eperm, arch)?.try_into()?;
    if part == Part::StepProcess {
        // The other two are inherited.
        return Ok(vec![("per-process-calls", main)]);
    }
    let clone3: BpfProgram = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        enosys,
        arch,
    )?
    .try_into()?;
    Ok(vec![
        ("refused-calls", main),
        ("clone3", clone3),
        ("unreviewed-calls", newer_calls_filter(arch)),
    ])
}

// Classic BPF opcodes (linux/bpf_common.h) and `struct seccomp_data` offsets (linux/seccomp.h). Each
// opcode is written as the C headers compose it (class | size/op | mode/source), zeros included.
#[allow(clippy::identity_op, clippy::eq_op)]
const BPF_LD_W_ABS: u16 = 0x00 | 0x00 | 0x20;
#[allow(clippy::identity_op)]
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10 | 0x00;
#[allow(clippy::identity_op)]
const BPF_JMP_JGT_K: u16 = 0x05 | 0x20 | 0x00;
#[allow(clippy::identity_op)]
const BPF_RET_K: u16 = 0x06 | 0x00;
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;

fn bpf(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Kills the process for a foreign ABI, and answers `ENOSYS` for a number above
/// [`LAST_REVIEWED_SYSCALL`] (which includes every x32 number: they have bit 30 set).
fn newer_calls_filter(arch: TargetArch) -> BpfProgram {
    vec![
        bpf(BPF_LD_W_ABS, SECCOMP_DATA_ARCH, 0, 0),
        bpf(BPF_JMP_JEQ_K, audit_arch(arch), 1, 0),
        bpf(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS, 0, 0),
        bpf(BPF_LD_W_ABS, SECCOMP_DATA_NR, 0, 0),
        bpf(BPF_JMP_JGT_K, LAST_REVIEWED_SYSCALL as u32, 0, 1),
        bpf(
            BPF_RET_K,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
            0,
            0,
        ),
        bpf(BPF_RET_K, libc::SECCOMP_RET_ALLOW, 0, 0),
    ]
}

/// Installs `filters` in a forked child and checks that `socket` is then refused. The child makes only
/// raw system calls (no allocation, no locks) and reports on a pipe: a stage and an errno.
fn trial(filters: &Filters) -> Result<(), String> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!(
            "could not make a pipe to test seccomp: {}",
            io::Error::last_os_error()
        ));
    }
    let [read_end, write_end] = fds;
    // SAFETY: the child only makes async-signal-safe calls (prctl, seccomp via syscall, socket, write,
    // _exit) on memory that was set up before the fork.
    let child = unsafe { libc::fork() };
    if child == 0 {
        fn report(fd: libc::c_int, stage: i32, errno: i32) -> ! {
            let mut msg = [0u8; 8];
            msg[..4].copy_from_slice(&stage.to_ne_bytes());
            msg[4..].copy_from_slice(&errno.to_ne_bytes());
            // SAFETY: writes 8 bytes from a local buffer, then exits without running anything else.
            unsafe {
                libc::write(fd, msg.as_ptr().cast(), msg.len());
                libc::_exit(0)
            }
        }
        // SAFETY: PR_SET_NO_NEW_PRIVS takes no pointers.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            report(write_end, 1, errno());
        }
        for (i, (_, program)) in filters.iter().enumerate() {
            if let Err(e) = seccompiler::apply_filter_all_threads(program) {
                let errno = match &e {
                    seccompiler::Error::Seccomp(e) | seccompiler::Error::Prctl(e) => {
                        e.raw_os_error().unwrap_or(0)
                    }
                    _ => 0,
                };
                report(write_end, 2 + i as i32, errno);
            }
        }
        // SAFETY: no pointers; a descriptor it returns is never used, and the process exits at once.
        let rc = unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) };
        if rc != -1 || errno() != libc::EPERM {
            report(write_end, 100, if rc == -1 { errno() } else { 0 });
        }
        report(write_end, 0, 0);
    }
    // SAFETY: closing our copy of the write end, which nothing else owns.
    unsafe { libc::close(write_end) };
    if child < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: as above, for the read end.
        unsafe { libc::close(read_end) };
        return Err(format!("could not fork a process to test seccomp: {e}"));
    }
    let mut msg = [0u8; 8];
    let mut got = 0;
    while got < msg.len() {
        // SAFETY: reads into the unfilled part of a local buffer.
        let n = unsafe { libc::read(read_end, msg[got..].as_mut_ptr().cast(), msg.len() - got) };
        if n > 0 {
            got += n as usize;
        } else if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
    let mut status = 0;
    // SAFETY: closes our read end; waits for the child we forked, with a valid status pointer.
    unsafe {
        libc::close(read_end);
        while libc::waitpid(child, &mut status, 0) < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
    }
    if got < msg.len() {
        return Err(format!(
            "the seccomp test process ended without a report (wait status {status:#x})"
        ));
    }
    let stage = i32::from_ne_bytes(msg[..4].try_into().unwrap());
    let errno = io::Error::from_raw_os_error(i32::from_ne_bytes(msg[4..].try_into().unwrap()));
    match stage {
        0 => Ok(()),
        1 => Err(format!("could not set PR_SET_NO_NEW_PRIVS: {errno}")),
        100 if errno.raw_os_error() == Some(0) => {
            Err("a test process under the filters could still make a socket".into())
        }
        100 => Err(format!(
            "socket() in a test process under the filters failed with {errno}, not EPERM"
        )),
        n => {
            let name = filters.get(n as usize - 2).map_or("?", |(name, _)| name);
            Err(format!(
                "the kernel refused the {name} seccomp filter: {errno}"
            ))
        }
    }
}

/// Test hook: tries each refused operation once and reports (name, `Ok(())` if it was refused /
/// `Err(description)` if it was not).
///
/// Each attempt is made so that, if it is not refused, it still does no harm and is told apart from a
/// refusal by its errno: a bad descriptor (`EBADF`), a path under a directory that does not exist
/// (`ENOENT`), a bad pointer (`EFAULT`), a pid that cannot exist (`ESRCH`), or a harmless success
/// (`unshare(0)`, `kill(-1, 0)`), whose descriptor is then closed and whose child is reaped. A process
/// created by a probe exits at once (`fork`, `vfork` and `clone` children make no call but `exit`). The
/// exception is `ptrace(PTRACE_TRACEME)`: if it is not refused, the caller's parent becomes its tracer,
/// which cannot be undone.
pub fn probe_refusals() -> Vec<(&'static str, Result<(), String>)> {
    probes()
        .into_iter()
        .map(|(name, _, probe)| (name, probe()))
        .collect()
}

type Probe = fn() -> Result<(), String>;

/// A nonexistent directory, so that a path call that is not refused fails with `ENOENT` and changes
/// nothing.
const NOWHERE: &std::ffi::CStr = c"/nonexistent-codestep-sandbox-probe/x";
const NOWHERE2: &std::ffi::CStr = c"/nonexistent-codestep-sandbox-probe/y";
/// Above `PID_MAX_LIMIT` (2^22), so no process has it.
const NO_PID: libc::c_long = 0x3fff_ffff;

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `Ok` when a raw `syscall()` result is -1 with `want` as errno.
fn refused_with(ret: libc::c_long, want: i32) -> Result<(), String> {
    if ret != -1 {
        return Err(format!("not refused: it returned {ret}"));
    }
    let got = errno();
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "not refused by the filter: it failed with {}, not {}",
            io::Error::from_raw_os_error(got),
            io::Error::from_raw_os_error(want)
        ))
    }
}

fn refused(ret: libc::c_long) -> Result<(), String> {
    refused_with(ret, libc::EPERM)
}

/// As [`refused_with`], closing the descriptor(s) a call that was not refused made.
fn refused_fd(ret: libc::c_long, want: i32) -> Result<(), String> {
    let errno = errno();
    if ret >= 0 {
        // SAFETY: the probe just made this descriptor and nothing else owns it.
        unsafe { libc::close(ret as libc::c_int) };
    }
    // Put errno back: `close` may have changed it.
    set_errno(errno);
    refused_with(ret, want)
}

fn set_errno(e: i32) {
    // SAFETY: __errno_location returns the calling thread's errno, always valid.
    unsafe { *libc::__errno_location() = e };
}

/// As [`refused_with`], reaping the child that a call that was not refused made. The child itself
/// exits at once (see [`spawn_probe`] and [`fork_probe`]).
fn refused_child(ret: libc::c_long, want: i32) -> Result<(), String> {
    let errno = errno();
    if ret > 0 {
        // SAFETY: waits for the child the probe made, which exits on its own.
        unsafe { libc::waitpid(ret as libc::pid_t, std::ptr::null_mut(), 0) };
    }
    set_errno(errno);
    refused_with(ret, want)
}

/// A raw process-making system call whose child, if one is made, exits at once without touching memory
/// (so it is safe for `vfork` and `CLONE_VM`, where the child shares this stack). Returns as `syscall()`
/// does: -1 with errno set on failure.
#[cfg(target_arch = "x86_64")]
fn spawn_probe(nr: libc::c_long, flags: u64) -> libc::c_long {
    let ret: i64;
    // SAFETY: the parent gets the call's result in rax (rcx and r11 are clobbered by `syscall`); the
    // child, if any, runs only `exit(0)`, from registers, and never returns into Rust code.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov eax, 60",
            "xor edi, edi",
            "syscall",
            "ud2",
            "2:",
            inlateout("rax") nr => ret,
            in("rdi") flags,
            in("rsi") 0u64,
            in("rdx") 0u64,
            in("r10") 0u64,
            in("r8") 0u64,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if (-4095..0).contains(&ret) {
        set_errno(-ret as i32);
        -1
    } else {
        ret
    }
}

/// A `fork`-like raw call (the child gets its own copy of memory) whose child exits at once.
fn fork_probe(nr: libc::c_long, a0: libc::c_long, a1: libc::c_long) -> libc::c_long {
    // SAFETY: without CLONE_VM the child has its own memory; it calls only `_exit`.
    let ret = unsafe {
        libc::syscall(
            nr,
            a0,
            a1,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    if ret == 0 {
        // SAFETY: in the child: leave at once, running no exit handlers.
        unsafe { libc::_exit(0) };
    }
    ret
}

/// `struct clone_args` (linux/sched.h, version 2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Every probe: name, whether it is harmless when the call is *not* refused, and the attempt.
fn probes() -> Vec<(&'static str, bool, Probe)> {
    use libc::{c_long as L, syscall};
    let mut v: Vec<(&'static str, bool, Probe)> = Vec::new();
    // SAFETY (all the `syscall`s below): arguments are valid pointers to live locals or constants, or
    // deliberately invalid values (-1, 1) that the kernel checks and rejects without side effects.
    v.push(("socket(AF_INET)", true, || {
        let af = libc::AF_INET as L;
        refused_fd(
            unsafe {
                syscall(
                    libc::SYS_socket,
                    af,
                    (libc::SOCK_STREAM | libc::SOCK_CLOEXEC) as L,
                    0 as L,
                )
            },
            libc::EPERM,
        )
    }));
    v.push(("socket(AF_UNIX)", true, || {
        let af = libc::AF_UNIX as L;
        refused_fd(
            unsafe {
                syscall(
                    libc::SYS_socket,
                    af,
                    (libc::SOCK_STREAM | libc::SOCK_CLOEXEC) as L,
                    0 as L,
                )
            },
            libc::EPERM,
        )
    }));
    v.push(("socketpair", true, || {
        let mut fds = [-1 as libc::c_int; 2];
        let ret = unsafe {
            syscall(
                libc::SYS_socketpair,
                libc::AF_UNIX as L,
                (libc::SOCK_STREAM | libc::SOCK_CLOEXEC) as L,
                0 as L,
                fds.as_mut_ptr(),
            )
        };
        let e = errno();
        if ret == 0 {
            unsafe {
                libc::close(fds[0]);
                libc::close(fds[1]);
            }
        }
        set_errno(e);
        refused(ret)
    }));
    v.push(("connect", true, || {
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 9u16.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of_val(&addr) as L;
        refused(unsafe {
            syscall(
                libc::SYS_connect,
                -1 as L,
                &addr as *const libc::sockaddr_in,
                len,
            )
        })
    }));
    v.push(("bind", true, || {
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: 0 },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of_val(&addr) as L;
        refused(unsafe {
            syscall(
                libc::SYS_bind,
                -1 as L,
                &addr as *const libc::sockaddr_in,
                len,
            )
        })
    }));
    v.push(("listen", true, || {
        refused(unsafe { syscall(libc::SYS_listen, -1 as L, 1 as L) })
    }));
    v.push(("accept", true, || {
        refused(unsafe { syscall(libc::SYS_accept, -1 as L, 0 as L, 0 as L) })
    }));
    v.push(("accept4", true, || {
        refused(unsafe { syscall(libc::SYS_accept4, -1 as L, 0 as L, 0 as L, 0 as L) })
    }));
    // A bad argv makes an execve that is not refused fail (EFAULT) before anything runs.
    v.push(("execve(/bin/true)", true, || {
        refused(unsafe { syscall(libc::SYS_execve, c"/bin/true".as_ptr(), 1 as L, 0 as L) })
    }));
    v.push(("execveat(/bin/true)", true, || {
        refused(unsafe {
            syscall(
                libc::SYS_execveat,
                libc::AT_FDCWD as L,
                c"/bin/true".as_ptr(),
                1 as L,
                0 as L,
                0 as L,
            )
        })
    }));
    #[cfg(target_arch = "x86_64")]
    {
        v.push(("fork", true, || {
            refused_child(spawn_probe(libc::SYS_fork, 0), libc::EPERM)
        }));
        v.push(("vfork", true, || {
            refused_child(spawn_probe(libc::SYS_vfork, 0), libc::EPERM)
        }));
        v.push((
            "clone(CLONE_VM|CLONE_VFORK) (vfork-like, no CLONE_THREAD)",
            true,
            || {
                let flags = (libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD) as u64;
                refused_child(spawn_probe(libc::SYS_clone, flags), libc::EPERM)
            },
        ));
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        v.push(("clone(SIGCHLD) (fork)", true, || {
            refused_child(
                fork_probe(libc::SYS_clone, libc::SIGCHLD as L, 0),
                libc::EPERM,
            )
        }));
        v.push((
            "clone(CLONE_VFORK) (vfork-like, no CLONE_THREAD)",
            true,
            || {
                let flags = (libc::CLONE_VFORK | libc::SIGCHLD) as L;
                refused_child(fork_probe(libc::SYS_clone, flags, 0), libc::EPERM)
            },
        ));
    }
    // The kernel itself rejects a thread in a new user namespace (EINVAL), so nothing is made either way.
    v.push(("clone(CLONE_THREAD|CLONE_NEWUSER)", true, || {
        let flags = libc::CLONE_THREAD
            | libc::CLONE_SIGHAND
            | libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_NEWUSER;
        refused(unsafe { syscall(libc::SYS_clone, flags as L, 0 as L, 0 as L, 0 as L, 0 as L) })
    }));
    v.push(("clone3 (ENOSYS)", true, || {
        let args = CloneArgs {
            exit_signal: libc::SIGCHLD as u64,
            ..Default::default()
        };
        let size = std::mem::size_of::<CloneArgs>() as L;
        let ret = fork_probe(libc::SYS_clone3, &args as *const CloneArgs as L, size);
        refused_child(ret, libc::ENOSYS)
    }));
    v.push(("ptrace(PTRACE_ATTACH)", true, || {
        refused(unsafe {
            syscall(
                libc::SYS_ptrace,
                libc::PTRACE_ATTACH as L,
                NO_PID,
                0 as L,
                0 as L,
            )
        })
    }));
    v.push(("ptrace(PTRACE_TRACEME)", false, || {
        refused(unsafe {
            syscall(
                libc::SYS_ptrace,
                libc::PTRACE_TRACEME as L,
                0 as L,
                0 as L,
                0 as L,
            )
        })
    }));
    v.push(("process_vm_readv", true, || {
        let pid = current_pid() as L;
        refused(unsafe {
            syscall(
                libc::SYS_process_vm_readv,
                pid,
                0 as L,
                0 as L,
                0 as L,
                0 as L,
                0 as L,
            )
        })
    }));
    v.push(("process_vm_writev", true, || {
        let pid = current_pid() as L;
        refused(unsafe {
            syscall(
                libc::SYS_process_vm_writev,
                pid,
                0 as L,
                0 as L,
                0 as L,
                0 as L,
                0 as L,
            )
        })
    }));
    v.push(("kcmp", true, || {
        let pid = current_pid() as L;
        refused(unsafe {
            syscall(
                libc::SYS_kcmp,
                pid,
                pid,
                0 as L, /* KCMP_FILE */
                0 as L,
                0 as L,
            )
        })
    }));
    v.push(("pidfd_open(self)", true, || {
        let pid = current_pid() as L;
        refused_fd(
            unsafe { syscall(libc::SYS_pidfd_open, pid, 0 as L) },
            libc::EPERM,
        )
    }));
    v.push(("pidfd_getfd", true, || {
        refused(unsafe { syscall(libc::SYS_pidfd_getfd, -1 as L, 0 as L, 0 as L) })
    }));
    v.push(("kill(-1, 0)", true, || {
        refused(unsafe { syscall(libc::SYS_kill, -1 as L, 0 as L) })
    }));
    v.push(("kill(other pid, 0)", true, || {
        refused(unsafe { syscall(libc::SYS_kill, NO_PID, 0 as L) })
    }));
    // The worker that forked this step process, or the supervisor of a worker that runs steps itself.
    v.push(("kill(parent, 0)", true, || {
        refused(unsafe { syscall(libc::SYS_kill, libc::getppid() as L, 0 as L) })
    }));
    v.push(("tgkill(other pid)", true, || {
        refused(unsafe { syscall(libc::SYS_tgkill, NO_PID, NO_PID, 0 as L) })
    }));
    v.push(("tkill", true, || {
        refused(unsafe { syscall(libc::SYS_tkill, NO_PID, 0 as L) })
    }));
    v.push(("prlimit64(other pid)", true, || {
        let mut old = libc::rlimit64 {
            rlim_cur: 0,
            rlim_max: 0,
        };
        refused(unsafe {
            syscall(
                libc::SYS_prlimit64,
                NO_PID,
                libc::RLIMIT_NOFILE as L,
                0 as L,
                &mut old as *mut libc::rlimit64,
            )
        })
    }));
    #[cfg(target_arch = "x86_64")]
    {
        v.push(("open(/etc/hostname)", true, || {
            let flags = (libc::O_RDONLY | libc::O_CLOEXEC) as L;
            refused_fd(
                unsafe { syscall(libc::SYS_open, c"/etc/hostname".as_ptr(), flags, 0 as L) },
                libc::EPERM,
            )
        }));
        v.push(("creat", true, || {
            refused_fd(
                unsafe { syscall(libc::SYS_creat, NOWHERE.as_ptr(), 0o600 as L) },
                libc::EPERM,
            )
        }));
        v.push(("mkdir", true, || {
            refused(unsafe { syscall(libc::SYS_mkdir, NOWHERE.as_ptr(), 0o700 as L) })
        }));
        v.push(("unlink", true, || {
            refused(unsafe { syscall(libc::SYS_unlink, NOWHERE.as_ptr()) })
        }));
        v.push(("rename", true, || {
            refused(unsafe { syscall(libc::SYS_rename, NOWHERE.as_ptr(), NOWHERE2.as_ptr()) })
        }));
        v.push(("chmod", true, || {
            refused(unsafe { syscall(libc::SYS_chmod, NOWHERE.as_ptr(), 0o600 as L) })
        }));
    }
    v.push(("openat(/etc/hostname)", true, || {
        let flags = (libc::O_RDONLY | libc::O_CLOEXEC) as L;
        refused_fd(
            unsafe {
                syscall(
                    libc::SYS_openat,
                    libc::AT_FDCWD as L,
                    c"/etc/hostname".as_ptr(),
                    flags,
                    0 as L,
                )
            },
            libc::EPERM,
        )
    }));
    v.push(("openat2(/etc/hostname)", true, || {
        // `struct open_how` (linux/openat2.h); libc's is non-exhaustive.
        #[repr(C)]
        struct OpenHow {
            flags: u64,
            mode: u64,
            resolve: u64,
        }
        let how = OpenHow {
            flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: 0,
        };
        let size = std::mem::size_of_val(&how) as L;
        refused_fd(
            unsafe {
                syscall(
                    libc::SYS_openat2,
                    libc::AT_FDCWD as L,
                    c"/etc/hostname".as_ptr(),
                    &how as *const OpenHow,
                    size,
                )
            },
            libc::EPERM,
        )
    }));
    v.push(("name_to_handle_at", true, || {
        let mut mount_id: libc::c_int = 0;
        refused(unsafe {
            syscall(
                libc::SYS_name_to_handle_at,
                libc::AT_FDCWD as L,
                c"/etc/hostname".as_ptr(),
                0 as L,
                &mut mount_id as *mut libc::c_int,
                0 as L,
            )
        })
    }));
    v.push(("open_tree", true, || {
        refused_fd(
            unsafe {
                syscall(
                    libc::SYS_open_tree,
                    libc::AT_FDCWD as L,
                    NOWHERE.as_ptr(),
                    libc::O_CLOEXEC as L,
                )
            },
            libc::EPERM,
        )
    }));
    v.push(("mkdirat", true, || {
        refused(unsafe {
            syscall(
                libc::SYS_mkdirat,
                libc::AT_FDCWD as L,
                NOWHERE.as_ptr(),
                0o700 as L,
            )
        })
    }));
    v.push(("unlinkat", true, || {
        refused(unsafe {
            syscall(
                libc::SYS_unlinkat,
                libc::AT_FDCWD as L,
                NOWHERE.as_ptr(),
                0 as L,
            )
        })
    }));
    v.push(("renameat2", true, || {
        refused(unsafe {
            syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD as L,
                NOWHERE.as_ptr(),
                libc::AT_FDCWD as L,
                NOWHERE2.as_ptr(),
                0 as L,
            )
        })
    }));
    v.push(("linkat", true, || {
        refused(unsafe {
            syscall(
                libc::SYS_linkat,
                libc::AT_FDCWD as L,
                NOWHERE.as_ptr(),
                libc::AT_FDCWD as L,
                NOWHERE2.as_ptr(),
                0 as L,
            )
        })
    }));
    v.push(("symlinkat", true, || {
        refused(unsafe {
            syscall(
                libc::SYS_symlinkat,
                NOWHERE.as_ptr(),
                libc::AT_FDCWD as L,
                NOWHERE2.as_ptr(),
            )
        })
    }));
    v.push(("mknodat", true, || {
        let mode = (libc::S_IFIFO | 0o600) as L;
        refused(unsafe {
            syscall(
                libc::SYS_mknodat,
                libc::AT_FDCWD as L,
                NOWHERE.as_ptr(),
                mode,
                0 as L,
            )
        })
    }));
    v.push(("fchmodat", true, || {
        refused(unsafe {
            syscall(
                libc::SYS_fchmodat,
                libc::AT_FDCWD as L,
                NOWHERE.as_ptr(),
                0o600 as L,
            )
        })
    }));
    v.push(("fchownat", true, || {
        refused(unsafe {
            syscall(
                libc::SYS_fchownat,
                libc::AT_FDCWD as L,
                NOWHERE.as_ptr(),
                0 as L,
                0 as L,
                0 as L,
            )
        })
    }));
    v.push(("truncate", true, || {
        refused(unsafe { syscall(libc::SYS_truncate, NOWHERE.as_ptr(), 0 as L) })
    }));
    v.push(("memfd_create", true, || {
        refused_fd(
            unsafe { syscall(libc::SYS_memfd_create, c"probe".as_ptr(), 0 as L) },
            libc::EPERM,
        )
    }));
    v.push(("fcntl(F_SETPIPE_SZ)", true, || {
        // On an invalid descriptor: EBADF if the call got through, EPERM if it was refused.
        refused(unsafe {
            syscall(
                libc::SYS_fcntl,
                -1 as L,
                libc::F_SETPIPE_SZ as L,
                1 << 20 as L,
            )
        })
    }));
    v.push(("unshare(0)", true, || {
        refused(unsafe { syscall(libc::SYS_unshare, 0 as L) })
    }));
    v.push(("setns", true, || {
        refused(unsafe { syscall(libc::SYS_setns, -1 as L, 0 as L) })
    }));
    // A bad filesystem-type pointer fails (EFAULT) before any permission check or mount.
    v.push(("mount", true, || {
        refused(unsafe { syscall(libc::SYS_mount, 0 as L, 0 as L, 1 as L, 0 as L, 0 as L) })
    }));
    // Unknown flags fail (EINVAL) first.
    v.push(("umount2", true, || {
        refused(unsafe { syscall(libc::SYS_umount2, NOWHERE.as_ptr(), 0x8000_0000u32 as L) })
    }));
    v.push(("chroot", true, || {
        refused(unsafe { syscall(libc::SYS_chroot, NOWHERE.as_ptr()) })
    }));
    // A bad attribute pointer fails (EFAULT) before any permission check.
    v.push(("perf_event_open", true, || {
        refused_fd(
            unsafe {
                syscall(
                    libc::SYS_perf_event_open,
                    1 as L,
                    0 as L,
                    -1 as L,
                    -1 as L,
                    0 as L,
                )
            },
            libc::EPERM,
        )
    }));
    v.push(("personality(query)", true, || {
        refused(unsafe { syscall(libc::SYS_personality, 0xffff_ffffu32 as L) })
    }));
    v.push(("ioctl(TIOCSTI)", true, || {
        let c: u8 = b'x';
        refused(unsafe {
            syscall(
                libc::SYS_ioctl,
                -1 as L,
                libc::TIOCSTI as L,
                &c as *const u8,
            )
        })
    }));
    v.push(("shmget", true, || {
        refused(unsafe { syscall(libc::SYS_shmget, 0x0c0d_e57e as L, 4096 as L, 0 as L) })
    }));
    v.push(("mq_open", true, || {
        refused_fd(
            unsafe {
                syscall(
                    libc::SYS_mq_open,
                    c"codestep-sandbox-probe".as_ptr(),
                    libc::O_RDONLY as L,
                    0 as L,
                    0 as L,
                )
            },
            libc::EPERM,
        )
    }));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The step process's part, built once for a placeholder pid and patched, is exactly the program
    /// built for the real pid: no other instruction holds the placeholder, and none is missed.
    #[test]
    fn a_prebuilt_step_process_part_with_its_pid_is_the_part_built_for_it() {
        let arch = target_arch().expect("a supported architecture");
        let prebuilt = step_process_program(arch, PID_PLACEHOLDER).unwrap();
        let placeholders = prebuilt
            .iter()
            .filter(|i| i.k == PID_PLACEHOLDER as u32)
            .count();
        assert!(placeholders >= 5, "{placeholders} comparisons with the pid");
        for pid in [1, 2, 4242, 65535, 4_194_303] {
            let direct = step_process_program(arch, pid).unwrap();
            let patched = with_pid(&prebuilt, pid);
            assert_eq!(patched.len(), direct.len());
            for (n, (a, b)) in patched.iter().zip(&direct).enumerate() {
                assert_eq!(
                    (a.code, a.jt, a.jf, a.k),
                    (b.code, b.jt, b.jf, b.k),
                    "instruction {n}, pid {pid}"
                );
            }
        }
    }
    use std::io::Read;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    const CHILD_ENV: &str = "CODESTEP_SANDBOX_CHILD";

    // ---- The filters, evaluated in Rust as the kernel would ----

    /// Runs one classic-BPF seccomp program on `struct seccomp_data`.
    fn run_bpf(prog: &[sock_filter], data: &[u8; 64]) -> u32 {
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let ins = &prog[pc];
            pc += 1;
            match ins.code {
                0x20 => {
                    let k = ins.k as usize;
                    acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                }
                0x54 => acc &= ins.k,
                0x05 => pc += ins.k as usize,
                0x15 | 0x25 | 0x35 | 0x45 => {
                    let taken = match ins.code {
                        0x15 => acc == ins.k,
                        0x25 => acc > ins.k,
                        0x35 => acc >= ins.k,
                        _ => acc & ins.k != 0,
                    };
                    pc += usize::from(if taken { ins.jt } else { ins.jf });
                }
                0x06 => return ins.k,
                code => panic!("BPF opcode {code:#x} not handled by the test interpreter"),
            }
        }
    }

    /// The answer of all filters together: the kernel keeps the strictest action, the newest filter
    /// winning a tie.
    fn verdict(filters: &Filters, arch: u32, nr: i64, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&(nr as i32).to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let mut best = libc::SECCOMP_RET_ALLOW;
        for (_, prog) in filters.iter().rev() {
            let ret = run_bpf(prog, &data);
            let action = |r: u32| (r & libc::SECCOMP_RET_ACTION_FULL) as i32;
            if action(ret) < action(best) {
                best = ret;
            }
        }
        best
    }

    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

    fn host() -> (Filters, u32, libc::pid_t) {
        let arch = target_arch().expect("tests run on x86_64 or aarch64");
        let pid = 4242;
        (build_filters(arch, pid).unwrap(), audit_arch(arch), pid)
    }

    #[test]
    fn every_listed_call_is_refused_and_the_list_has_no_duplicates() {
        let (filters, arch, _) = host();
        let list = refusals();
        let mut seen = BTreeMap::new();
        for (name, nr, when) in &list {
            if let Some(other) = seen.insert(*nr, *name) {
                panic!("{name} and {other} share number {nr}");
            }
            if matches!(when, When::Always) {
                assert_eq!(verdict(&filters, arch, *nr, [0; 6]), EPERM, "{name}");
                assert_eq!(verdict(&filters, arch, *nr, [u64::MAX; 6]), EPERM, "{name}");
            }
        }
        assert!(list.len() > 100, "{} calls", list.len());
        assert!(filters.iter().all(|(_, p)| p.len() < 4096));
    }

    #[test]
    fn calls_v8_and_tokio_need_are_allowed() {
        let (filters, arch, _) = host();
        #[allow(unused_mut)]
        let mut needed = vec![
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_readv,
            libc::SYS_writev,
            libc::SYS_close,
            libc::SYS_mmap,
            libc::SYS_munmap,
            libc::SYS_mprotect,
            libc::SYS_madvise,
            libc::SYS_mremap,
            libc::SYS_brk,
            libc::SYS_futex,
            libc::SYS_futex_waitv,
            libc::SYS_clock_gettime,
            libc::SYS_clock_nanosleep,
            libc::SYS_nanosleep,
            libc::SYS_getrandom,
            libc::SYS_epoll_create1,
            libc::SYS_epoll_ctl,
            libc::SYS_epoll_pwait,
            libc::SYS_epoll_pwait2,
            libc::SYS_eventfd2,
            libc::SYS_sendmsg,
            libc::SYS_recvmsg,
            libc::SYS_sendto,
            libc::SYS_recvfrom,
            libc::SYS_sched_yield,
            libc::SYS_sched_getaffinity,
            libc::SYS_rt_sigaction,
            libc::SYS_rt_sigprocmask,
            libc::SYS_rt_sigreturn,
            libc::SYS_sigaltstack,
            libc::SYS_prctl,
            libc::SYS_exit,
            libc::SYS_exit_group,
            libc::SYS_gettid,
            libc::SYS_getpid,
            libc::SYS_set_robust_list,
            libc::SYS_rseq,
            libc::SYS_membarrier,
            libc::SYS_pkey_alloc,
            libc::SYS_pkey_mprotect,
            libc::SYS_pkey_free,
            libc::SYS_ftruncate,
            libc::SYS_fcntl,
            libc::SYS_dup,
            libc::SYS_dup3,
            libc::SYS_pipe2,
            libc::SYS_ppoll,
            libc::SYS_getrusage,
            libc::SYS_fstat,
            libc::SYS_newfstatat,
            libc::SYS_statx,
            libc::SYS_readlinkat,
            libc::SYS_uname,
            libc::SYS_set_tid_address,
            libc::SYS_sched_setaffinity,
            libc::SYS_setpriority,
            libc::SYS_shutdown,
            libc::SYS_getsockopt,
            libc::SYS_setsockopt,
            libc::SYS_close_range,
            libc::SYS_seccomp,
            libc::SYS_mlock,
            libc::SYS_msync,
            libc::SYS_mseal,
            453, /* map_shadow_stack */
            libc::SYS_restart_syscall,
            libc::SYS_timerfd_create,
            libc::SYS_timerfd_settime,
        ];
        #[cfg(target_arch = "x86_64")]
        needed.extend([
            libc::SYS_arch_prctl,
            libc::SYS_poll,
            libc::SYS_epoll_wait,
            libc::SYS_getrlimit,
            libc::SYS_setrlimit,
        ]);
        for nr in needed {
            assert_eq!(verdict(&filters, arch, nr, [0; 6]), ALLOW, "syscall {nr}");
        }
    }

    #[test]
    fn clone_is_allowed_for_threads_only() {
        let (filters, arch, _) = host();
        let glibc_thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID) as u32 as u64;
        let clone = |flags: u64| verdict(&filters, arch, libc::SYS_clone, [flags, 0, 0, 0, 0, 0]);
        assert_eq!(clone(glibc_thread), ALLOW);
        // The upper half of the register is not looked at by the kernel, nor by the filter.
        assert_eq!(clone(glibc_thread | 0xffff_ffff_0000_0000), ALLOW);
        assert_eq!(clone(libc::SIGCHLD as u64), EPERM);
        assert_eq!(
            clone((libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD) as u64),
            EPERM
        );
        assert_eq!(clone(0xffff_ffff_0000_0000 | libc::SIGCHLD as u64), EPERM);
        for ns in CLONE_NAMESPACES {
            assert_eq!(clone(glibc_thread | ns as u32 as u64), EPERM, "{ns:#x}");
        }
        assert_eq!(verdict(&filters, arch, libc::SYS_clone3, [0; 6]), ENOSYS);
    }

    #[test]
    fn signals_and_limits_reach_only_this_process() {
        let (filters, arch, pid) = host();
        let me = pid as u64;
        let v = |nr: i64, a0: u64| verdict(&filters, arch, nr, [a0, me, 0, 0, 0, 0]);
        for nr in [
            libc::SYS_kill,
            libc::SYS_tgkill,
            libc::SYS_rt_sigqueueinfo,
            libc::SYS_rt_tgsigqueueinfo,
        ] {
            assert_eq!(v(nr, me), ALLOW, "{nr}");
            assert_eq!(v(nr, me | 0xffff_ffff_0000_0000), ALLOW, "{nr}");
            assert_eq!(v(nr, 1), EPERM, "{nr}");
            assert_eq!(v(nr, 0), EPERM, "{nr}");
            assert_eq!(v(nr, u32::MAX as u64), EPERM, "{nr}: -1");
        }
        assert_eq!(v(libc::SYS_prlimit64, 0), ALLOW);
        assert_eq!(v(libc::SYS_prlimit64, me), ALLOW);
        assert_eq!(v(libc::SYS_prlimit64, 1), EPERM);
        let ioctl = |req: u64| verdict(&filters, arch, libc::SYS_ioctl, [0, req, 0, 0, 0, 0]);
        assert_eq!(ioctl(libc::FIONBIO), ALLOW);
        assert_eq!(ioctl(libc::TIOCGWINSZ), ALLOW);
        assert_eq!(ioctl(libc::TIOCSTI), EPERM);
        assert_eq!(ioctl(libc::TIOCSTI | 0xffff_ffff_0000_0000), EPERM);
        assert_eq!(ioctl(libc::TIOCLINUX), EPERM);
    }

    #[test]
    fn unreviewed_numbers_and_foreign_abis_are_refused() {
        let (filters, arch, _) = host();
        assert_eq!(
            verdict(&filters, arch, LAST_REVIEWED_SYSCALL, [0; 6]),
            EPERM
        ); // file_setattr
        assert_eq!(
            verdict(&filters, arch, LAST_REVIEWED_SYSCALL + 1, [0; 6]),
            ENOSYS
        );
        assert_eq!(verdict(&filters, arch, 1000, [0; 6]), ENOSYS);
        assert_eq!(verdict(&filters, arch, -1, [0; 6]), ENOSYS);
        // x32: socket with __X32_SYSCALL_BIT.
        assert_eq!(verdict(&filters, arch, 0x4000_0000 | 41, [0; 6]), ENOSYS);
        let i386 = 3 | 0x4000_0000; // AUDIT_ARCH_I386
        assert_eq!(
            verdict(&filters, i386, 0, [0; 6]),
            libc::SECCOMP_RET_KILL_PROCESS
        );
    }

    #[test]
    fn available_on_this_machine() {
        available().unwrap();
    }

    #[test]
    fn trial_reports_a_rejected_filter_and_one_that_refuses_nothing() {
        let bad = vec![("bad", vec![bpf(0xffff, 0, 0, 0)])];
        let err = trial(&bad).unwrap_err();
        assert!(
            err.contains("bad") && err.contains("Invalid argument"),
            "{err}"
        );
        let allow_all = vec![(
            "allow-all",
            vec![bpf(BPF_RET_K, libc::SECCOMP_RET_ALLOW, 0, 0)],
        )];
        let err = trial(&allow_all).unwrap_err();
        assert!(err.contains("could still make a socket"), "{err}");
    }

    // ---- Confining a real process: this test binary, started again ----

    /// Runs this test binary again with only `child_entry`, in `mode`, and returns its stdout.
    fn run_child(mode: &str) -> String {
        let here = module_path!()
            .split_once("::")
            .map_or(module_path!(), |(_, rest)| rest);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                &format!("{here}::child_entry"),
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, mode)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + Duration::from_secs(180);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (out, err) = (out.join().unwrap(), err.join().unwrap());
        assert!(
            status.success() && out.contains("SANDBOX-DONE"),
            "{mode} child failed ({status}).\nstdout:\n{out}\nstderr:\n{err}"
        );
        out
    }

    fn lines<'a>(out: &'a str, kind: &str) -> Vec<(&'a str, &'a str, &'a str)> {
        out.lines()
            .filter_map(|l| {
                let mut parts = l.splitn(4, '\t');
                (parts.next()? == kind).then(|| {
                    (
                        parts.next().unwrap_or(""),
                        parts.next().unwrap_or(""),
                        parts.next().unwrap_or(""),
                    )
                })
            })
            .collect()
    }

    #[test]
    fn confined_process_is_refused_everything_and_still_runs_v8() {
        let out = run_child("confined");
        let probes = lines(&out, "PROBE");
        let not_refused: Vec<_> = probes.iter().filter(|(_, r, _)| *r != "refused").collect();
        assert!(
            not_refused.is_empty(),
            "not refused: {not_refused:#?}\n{out}"
        );
        for name in [
            "socket(AF_INET)",
            "socketpair",
            "connect",
            "bind",
            "listen",
            "execve(/bin/true)",
            "vfork",
            "fork",
            "clone3 (ENOSYS)",
            "ptrace(PTRACE_TRACEME)",
            "openat(/etc/hostname)",
            "open(/etc/hostname)",
            "creat",
            "process_vm_readv",
            "unshare(0)",
            "mount",
        ] {
            if cfg!(target_arch = "x86_64")
                || !["vfork", "fork", "open(/etc/hostname)", "creat"].contains(&name)
            {
                assert!(
                    probes.iter().any(|(n, _, _)| *n == name),
                    "no probe {name}\n{out}"
                );
            }
        }
        let checks = lines(&out, "CHECK");
        let failed: Vec<_> = checks.iter().filter(|(_, r, _)| *r != "ok").collect();
        assert!(
            failed.is_empty(),
            "failed inside the confined process: {failed:#?}\n{out}"
        );
        assert!(checks.len() >= 12, "{out}");
    }

    /// The probes must notice a missing filter: without one, none of them may look refused.
    #[test]
    fn probes_tell_an_unconfined_process() {
        let out = run_child("unconfined");
        let probes = lines(&out, "PROBE");
        assert!(probes.len() + 1 >= super::probes().len(), "{out}");
        let looks_refused: Vec<_> = probes.iter().filter(|(_, r, _)| *r != "allowed").collect();
        assert!(
            looks_refused.is_empty(),
            "look refused without a filter: {looks_refused:#?}\n{out}"
        );
    }

    /// Entry point of the child process; does nothing in a normal test run.
    #[test]
    fn child_entry() {
        let Ok(mode) = std::env::var(CHILD_ENV) else {
            return;
        };
        // The harness has printed "test ... " without a newline.
        println!();
        match mode.as_str() {
            "confined" => confined_child(),
            "unconfined" => {
                for (name, harmless, probe) in probes() {
                    if harmless {
                        let verdict = match probe() {
                            Ok(()) => "refused".to_string(),
                            Err(e) => format!("allowed\t{e}"),
                        };
                        println!("PROBE\t{name}\t{verdict}");
                    }
                }
            }
            other => panic!("unknown {CHILD_ENV}={other}"),
        }
        println!("SANDBOX-DONE");
    }

    fn check(name: &str, f: impl FnOnce() -> Result<(), String>) {
        match f() {
            Ok(()) => println!("CHECK\t{name}\tok"),
            Err(e) => println!("CHECK\t{name}\tfailed\t{e}"),
        }
    }

    fn os_err(what: &str) -> String {
        format!("{what}: {}", io::Error::last_os_error())
    }

    fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
        if ok {
            Ok(())
        } else {
            Err(what())
        }
    }

    /// What a worker has before it confines itself, then `confine`, then the probes and the things a
    /// worker must still be able to do.
    fn confined_child() {
        use deno_core::{JsRuntime, RuntimeOptions};

        // As a worker: V8 and its platform threads, a tokio runtime, a first isolate, another thread,
        // a socket pair (the supervisor link) and a pipe.
        crate::engine::runtime::init_platform();
        let tokio_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        {
            let _enter = tokio_rt.enter();
            let mut js = JsRuntime::new(RuntimeOptions::default());
            js.execute_script("warm.js", "Math.random() + new Date().getTime()")
                .unwrap();
        }
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let early = std::thread::spawn(move || {
            wait.recv().unwrap();
            // SAFETY: no pointers; a descriptor, if made, is closed.
            let rc =
                unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) };
            let e = errno();
            if rc >= 0 {
                unsafe { libc::close(rc as i32) };
            }
            (rc, e)
        });
        let mut pipe = [0; 2];
        let mut pair = [0; 2];
        // SAFETY: valid out arrays of two ints.
        unsafe {
            assert_eq!(libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC), 0);
            assert_eq!(
                libc::socketpair(
                    libc::AF_UNIX,
                    libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                    0,
                    pair.as_mut_ptr()
                ),
                0
            );
        }

        confine().expect("confine");

        check("PR_GET_SECCOMP is 2 (filter)", || {
            let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
            ensure(mode == 2, || format!("mode {mode}"))
        });
        check("PR_GET_NO_NEW_PRIVS is 1", || {
            let v = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
            ensure(v == 1, || format!("{v}"))
        });
        check("a thread made before confine is confined too", || {
            go.send(()).unwrap();
            let (rc, e) = early.join().unwrap();
            ensure(rc == -1 && e == libc::EPERM, || {
                format!("socket() there returned {rc}, errno {e}")
            })
        });

        for (name, result) in probe_refusals() {
            match result {
                Ok(()) => println!("PROBE\t{name}\trefused"),
                Err(e) => println!("PROBE\t{name}\tallowed\t{e}"),
            }
        }

        check("thread spawn and join", || {
            match std::thread::spawn(|| 40 + 2).join() {
                Ok(42) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
        check("allocate and touch 64 MiB", || {
            let mut v = vec![0u8; 64 << 20];
            for i in (0..v.len()).step_by(4096) {
                v[i] = (i >> 12) as u8;
            }
            let v = std::hint::black_box(v);
            let sum: u64 = v.iter().step_by(4096).map(|&b| u64::from(b)).sum();
            let want: u64 = (0..v.len())
                .step_by(4096)
                .map(|i| u64::from((i >> 12) as u8))
                .sum();
            ensure(sum == want, || "wrong sum".into())
        });
        check("getrandom", || {
            let mut buf = [0u8; 32];
            getrandom::fill(&mut buf).map_err(|e| e.to_string())?;
            ensure(buf != [0; 32], || "all zero".into())
        });
        check("pipe made before confine", || {
            let n = unsafe { libc::write(pipe[1], b"ping".as_ptr().cast(), 4) };
            let mut buf = [0u8; 4];
            let m = unsafe { libc::read(pipe[0], buf.as_mut_ptr().cast(), 4) };
            ensure(n == 4 && m == 4 && &buf == b"ping", || os_err("pipe"))
        });
        check("socketpair made before confine: sendmsg/recvmsg", || {
            let mut data = *b"hello";
            let iov = libc::iovec {
                iov_base: data.as_mut_ptr().cast(),
                iov_len: data.len(),
            };
            // SAFETY: msghdr is plain data; all-zero is a valid empty header.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &iov as *const _ as *mut _;
            msg.msg_iovlen = 1;
            let sent = unsafe { libc::sendmsg(pair[0], &msg, 0) };
            let mut back = [0u8; 5];
            let riov = libc::iovec {
                iov_base: back.as_mut_ptr().cast(),
                iov_len: back.len(),
            };
            let mut rmsg: libc::msghdr = unsafe { std::mem::zeroed() };
            rmsg.msg_iov = &riov as *const _ as *mut _;
            rmsg.msg_iovlen = 1;
            let got = unsafe { libc::recvmsg(pair[1], &mut rmsg, 0) };
            ensure(sent == 5 && got == 5 && &back == b"hello", || {
                os_err("socketpair")
            })
        });
        check("clock_gettime (monotonic, realtime, thread CPU)", || {
            for clock in [
                libc::CLOCK_MONOTONIC,
                libc::CLOCK_REALTIME,
                libc::CLOCK_THREAD_CPUTIME_ID,
            ] {
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
                    return Err(os_err("clock_gettime"));
                }
            }
            let _ = std::time::SystemTime::now();
            let _ = Instant::now().elapsed();
            Ok(())
        });
        check("shared anonymous mmap", || unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                1 << 20,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                return Err(os_err("mmap"));
            }
            *(p as *mut u8) = 7;
            libc::munmap(p, 1 << 20);
            Ok(())
        });
        check(
            "signals to this process (kill, tgkill with signal 0)",
            || unsafe {
                let pid = libc::getpid();
                ensure(libc::kill(pid, 0) == 0, || os_err("kill"))?;
                let rc = libc::syscall(
                    libc::SYS_tgkill,
                    pid as libc::c_long,
                    libc::gettid() as libc::c_long,
                    0 as libc::c_long,
                );
                ensure(rc == 0, || os_err("tgkill"))
            },
        );
        check("getrlimit / setrlimit on this process", || unsafe {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            ensure(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0, || {
                os_err("getrlimit")
            })?;
            ensure(libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0, || {
                os_err("setrlimit")
            })
        });
        check("sched_yield", || {
            ensure(unsafe { libc::sched_yield() } == 0, || {
                os_err("sched_yield")
            })
        });
        check(
            "tokio runtime made after confine (epoll, eventfd, timer, blocking thread)",
            || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let v = tokio::task::spawn_blocking(|| 7)
                        .await
                        .map_err(|e| e.to_string())?;
                    ensure(v == 7, || "spawn_blocking".into())
                })
            },
        );
        check(
            "isolate made after confine: JIT, GC, Math.random, Date, Intl, WebAssembly",
            || {
                let _enter = tokio_rt.enter();
                let before = V8_ENTROPY_CALLS.load(std::sync::atomic::Ordering::Relaxed);
                let mut js = JsRuntime::new(RuntimeOptions::default());
                let script = r#"
                function f(x) { return x * 2 + 1; }
                let s = 0;
                for (let i = 0; i < 300000; i++) s += f(i);
                if (s !== 90000000000) throw new Error("sum " + s);
                const objs = [];
                for (let i = 0; i < 200000; i++) objs.push({ i, s: String(i) });
                const r = Math.random();
                if (!(r >= 0 && r < 1)) throw new Error("Math.random " + r);
                if (new Date(0).toISOString() !== "1970-01-01T00:00:00.000Z") throw new Error("Date");
                if (!Intl.DateTimeFormat().resolvedOptions().timeZone) throw new Error("no time zone");
                new Date().toString();
                new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])));
                objs.length
            "#;
                js.execute_script("after_confine.js", script)
                    .map_err(|e| e.to_string())?;
                drop(js);
                let after = V8_ENTROPY_CALLS.load(std::sync::atomic::Ordering::Relaxed);
                ensure(after > before, || {
                    "V8 did not take its seed from the entropy source".into()
                })
            },
        );
        check(
            "step isolate (startup snapshot, extensions) made after confine",
            || {
                use crate::engine::runtime;
                let _enter = tokio_rt.enter();
                let mut step = runtime::create(64 << 20, runtime::BufferBudget::new(64 << 20))?;
                let script = r#"
                const e = new TextEncoder().encode("héllo");
                if (e.length !== 6) throw new Error("TextEncoder");
                if (!(Math.random() < 1)) throw new Error("Math.random");
                JSON.stringify({ d: new Date(0).toISOString(), n: e.length })
            "#;
                step.js
                    .execute_script("step_after_confine.js", script)
                    .map_err(|e| e.to_string())?;
                Ok(())
            },
        );
    }
}
