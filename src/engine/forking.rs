//! A process per step: what a worker does once, before it forks the first step process.
//!
//! A worker of a server without a package directory makes one isolate from the snapshot and then, for
//! each step, forks a process that runs the step in its copy of that isolate and exits (`worker`). Every
//! step still gets an isolate no other step has touched, and the isolate's set-up is paid once per
//! worker instead of once per step; the step process's teardown is the kernel's, at exit.
//!
//! Two things make a forked copy usable: V8's memory must be inherited ([`inherit_all_memory`]), and
//! V8 must have no thread of its own (`runtime::init_single_threaded_platform`). Three make it fast:
//! the compiled code of the scripts a step loads on first use is made here once
//! ([`warm_lazy_scripts`]), so each step process inherits it instead of compiling them again; the
//! isolate's garbage is collected, and its sweeping finished, before forking
//! (`step::Prepared::compact`); and the worker's memory is made cheap to fork ([`prepare_memory`]): its
//! allocator's free pages released, and the read-only file mappings' page-table entries copied
//! ([`map_files_into_children`]), so a step process does not fault the code in again.

use super::code_pages::HUGE;
use super::modules::{builtins, resolve};
use super::protocol::Job;
use super::step::{self, Link};
use super::watchdog::Watchdog;

/// V8 marks its memory reservations `MADV_DONTFORK`, so a forked child would find its heap unmapped.
/// This marks every mapping that has the mark (`dc` in `smaps`' `VmFlags`) inheritable again. It runs
/// after the worker's isolate is made, and the worker allocates nothing afterwards.
fn inherit_all_memory() -> std::io::Result<()> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut range: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            let Some((start, end)) = range.take() else {
                continue;
            };
            if flags.split_whitespace().any(|f| f == "dc") {
                // SAFETY: the range is one of this process's own mappings; MADV_DOFORK changes only
                // whether a child inherits it.
                let r = unsafe {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DOFORK)
                };
                if r != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        } else if let Some((start, end)) = line.split_whitespace().next().and_then(parse_range) {
            // Memory a step process could write and the worker, or the next step process, read.
            if line.split_whitespace().nth(1).is_some_and(shared_writable) {
                return Err(std::io::Error::other(format!(
                    "a shared writable mapping would be shared with every step process: {line}"
                )));
            }
            range = Some((start, end));
        }
    }
    Ok(())
}

/// What a worker does to its memory once, after its isolate is made and before the first fork.
pub fn prepare_memory() -> std::io::Result<()> {
    // The worker's warm-up and its isolate's set-up freed much of what they allocated: the free
    // pages go back to the kernel, so no fork copies their page-table entries, and a step process that
    // allocates there gets a zeroed page rather than a copy.
    // SAFETY: malloc_trim only releases free memory of this process's allocator.
    unsafe { libc::malloc_trim(0) };
    map_files_into_children()?;
    inherit_all_memory()
}

/// Makes `fork` copy the page-table entries of the read-only file mappings (this binary's code and
/// constant data, libc's), so a step process finds what the worker read already mapped instead of
/// faulting it in (about 20 faults fewer per step process). The kernel copies a private file
/// mapping's entries at fork only when the mapping has anonymous pages, so one page of each is written
/// (with the byte it holds) to give it one. Entries of 4 KiB pages are not cheap to copy (each touches
/// its page's bookkeeping, at fork and again at exit: about 0.25 ms per fork for this binary's); most
/// of this binary's code is in 2 MiB pages (`code_pages`), whose entries fork leaves out, and a step
/// process maps each of those with one fault. With those, copying the rest and faulting it in cost
/// about the same (1.90 against 1.99 ms of CPU per trivial step, three noisy interleaved rounds).
fn map_files_into_children() -> std::io::Result<()> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let path = fields.nth(3).unwrap_or("");
        if !(perms == "r-xp" || perms == "r--p") || !path.starts_with('/') {
            continue;
        }
        let Some((start, end)) = parse_range(range) else {
            continue;
        };
        // A page outside the mapping's whole 2 MiB ranges: such a range may be mapped as one 2 MiB
        // page (`code_pages`), which a write would split into small ones, and which fork does not
        // copy anyway. A mapping made only of whole ranges is left as it is.
        let page = match (start % HUGE, end % HUGE) {
            (0, 0) => continue,
            (0, _) => end - 4096,
            _ => start,
        } as *mut u8;
        // SAFETY: the whole of one of this process's read-only file mappings is made writable (so it
        // stays one mapping) for one write of the byte that page already holds, then read-only
        // (and executable, if it was) again; this thread is the only one that runs code now.
        unsafe {
            let x = if perms == "r-xp" { libc::PROT_EXEC } else { 0 };
            let rwx = libc::PROT_READ | libc::PROT_WRITE | x;
            if libc::mprotect(start as *mut libc::c_void, end - start, rwx) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            std::ptr::write_volatile(page, std::ptr::read_volatile(page));
            if libc::mprotect(start as *mut libc::c_void, end - start, libc::PROT_READ | x) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

fn shared_writable(perms: &str) -> bool {
    let p = perms.as_bytes();
    p.len() == 4 && p[1] == b'w' && p[3] == b's'
}

/// A mapping's address range, the first field of its line in `maps` or `smaps` (`start-end`).
pub(super) fn parse_range(field: &str) -> Option<(usize, usize)> {
    let (a, b) = field.split_once('-')?;
    Some((
        usize::from_str_radix(a, 16).ok()?,
        usize::from_str_radix(b, 16).ok()?,
    ))
}

/// Loads every lazily loaded script once, in an isolate of its own that is gone before the worker
/// makes the one its step processes share: deno_web's streams, Web Crypto and each Node module. Their
/// compiled code stays in this process's code cache (`modules::loader`), which every step process
/// inherits. Without this, each step process would compile what it loads from source (the streams:
/// about 7 ms against 2 ms).
pub fn warm_lazy_scripts() -> Result<(), String> {
    let imports: String = builtins::SUPPORTED
        .iter()
        .map(|name| format!("import \"node:{name}\";\n"))
        .collect();
    let code = format!(
        "{imports}export default async () => {{\n  void ReadableStream;\n  void new Response('x').body;\n  \
         void crypto.subtle;\n  return 1;\n}};\n"
    );
    let modules = resolve::prepare_omitting("warm.js", &code, &[], None, &Default::default());
    let job = Job {
        code,
        modules,
        env: Vec::new(),
        input: "null".into(),
        ctx: "{}".into(),
        limits: Default::default(),
        audit_heap: false,
    };
    // It makes no fetch and logs nothing: its link goes nowhere.
    let link = Link {
        send: Box::new(|_| {}),
        connect: Box::new(|_| Box::pin(std::future::pending())),
    };
    // A runtime and a watchdog of its own, both gone (with any thread they started) before the
    // worker forks: a step process must start with one thread, and a runtime that knows of no other.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let watchdog = Watchdog::new("codestep-warm".into());
    let outcome = step::run(job, link, &rt, &watchdog, None, None);
    drop(watchdog);
    drop(rt);
    match outcome.result {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "loading the lazily loaded scripts failed: {}",
            e.message
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_mapping_lines_give_their_range() {
        assert_eq!(
            parse_range("7f18520d0000-7f1852150000"),
            Some((0x7f18520d0000, 0x7f1852150000))
        );
        assert_eq!(parse_range("Size:"), None);
        assert_eq!(parse_range("VmFlags:"), None);
        assert!(shared_writable("rw-s"));
        assert!(!shared_writable("rw-p"));
        assert!(!shared_writable("r--s"));
    }
}
