//! The per-step log that `console.*` writes to. It is capped, so a step that logs in a loop costs a
//! bounded amount of memory, and the cut is visible in the result.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// At most this many entries are kept.
pub const MAX_ENTRIES: usize = 1_000;
/// At most this many bytes of messages in all.
pub const MAX_TOTAL_BYTES: usize = 1024 * 1024;
/// One message longer than this is cut.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = LogLevel)]
pub enum Level {
    Debug,
    Log,
    Info,
    Warn,
    Error,
}

impl Level {
    /// The numbers the polyfill sends; anything else is treated as `log`.
    pub fn from_op(n: u32) -> Level {
        match n {
            0 => Level::Debug,
            2 => Level::Info,
            3 => Level::Warn,
            4 => Level::Error,
            _ => Level::Log,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogEntry {
    pub level: Level,
    pub message: String,
    /// Milliseconds since the Unix epoch.
    pub time: u64,
}

/// Cuts `text` to at most `max` bytes on a character boundary, marked `…[truncated]`, and lets go of
/// the rest of its allocation: a cut text must not hold on to the bytes it no longer shows.
pub fn truncate_text(text: &mut String, max: usize) {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("…[truncated]");
        text.shrink_to_fit();
    }
}

#[derive(Debug, Default)]
pub struct LogBuffer {
    entries: Vec<LogEntry>,
    bytes: usize,
    dropped: usize,
}

impl LogBuffer {
    pub fn push(&mut self, level: Level, mut message: String) {
        if self.entries.len() >= MAX_ENTRIES || self.bytes >= MAX_TOTAL_BYTES {
            self.dropped += 1;
            return;
        }
        let room = MAX_MESSAGE_BYTES.min(MAX_TOTAL_BYTES - self.bytes);
        truncate_text(&mut message, room);
        self.bytes += message.len();
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.entries.push(LogEntry {
            level,
            message,
            time,
        });
    }

    /// Applies the caps again to entries that came from elsewhere (a worker process, which is not
    /// trusted to have kept them): what is over the caps is dropped and counted.
    pub fn recap(entries: Vec<LogEntry>, dropped: usize) -> (Vec<LogEntry>, usize) {
        let mut log = LogBuffer::default();
        for e in entries {
            let before = log.entries.len();
            log.push(e.level, e.message);
            if let Some(kept) = log.entries.get_mut(before) {
                kept.time = e.time;
            }
        }
        (log.entries, log.dropped.saturating_add(dropped))
    }

    /// The entries, and how many were dropped because the log was full.
    pub fn finish(self) -> (Vec<LogEntry>, usize) {
        (self.entries, self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_entries_and_counts_what_it_dropped() {
        let mut log = LogBuffer::default();
        for i in 0..MAX_ENTRIES + 5 {
            log.push(Level::Log, format!("line {i}"));
        }
        let (entries, dropped) = log.finish();
        assert_eq!(entries.len(), MAX_ENTRIES);
        assert_eq!(dropped, 5);
    }

    #[test]
    fn recap_applies_the_caps_to_foreign_entries() {
        let foreign: Vec<LogEntry> = (0..MAX_ENTRIES + 10)
            .map(|i| LogEntry {
                level: Level::Info,
                message: "x".repeat(if i == 0 { MAX_MESSAGE_BYTES * 4 } else { 10 }),
                time: 7,
            })
            .collect();
        let (entries, dropped) = LogBuffer::recap(foreign, 3);
        assert_eq!(entries.len(), MAX_ENTRIES);
        assert_eq!(dropped, 13);
        assert!(entries[0].message.len() <= MAX_MESSAGE_BYTES + "…[truncated]".len());
        assert_eq!(entries[1].time, 7);
    }

    #[test]
    fn cuts_long_messages_on_a_char_boundary() {
        let mut log = LogBuffer::default();
        log.push(Level::Warn, "é".repeat(MAX_MESSAGE_BYTES));
        let (entries, _) = log.finish();
        assert!(entries[0].message.len() <= MAX_MESSAGE_BYTES + "…[truncated]".len());
        assert!(entries[0].message.ends_with("[truncated]"));
    }
}
