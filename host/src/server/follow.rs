//! Reading a file that a run is still writing (a stage's log, the run's
//! events): what it holds, then what is added, until the writer is done —
//! the server's `?follow=true` and its server-sent events. The file is
//! read again every [`POLL`]; whether the writer is done is asked of the
//! run store, which outlives any one process.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::Server;
use crate::pipeline::stage::Stage;

/// How often a followed file is read again.
const POLL: Duration = Duration::from_millis(200);

/// When a followed file is complete.
#[derive(Debug, Clone)]
pub(crate) enum Until {
    /// The run has ended.
    RunEnds(i64),
    /// A stage of the run has ended (or the run has).
    StageEnds(i64, String, Stage),
}

impl Until {
    /// Whether it is reached, or will never be known (the store failed, the server is stopping).
    pub(crate) async fn reached(&self, server: &Arc<Server>) -> bool {
        if server.stopping.is_cancelled() {
            return true;
        }
        let until = self.clone();
        let ended = server
            .with_store(move |store| match &until {
                Until::RunEnds(run) => store.has_ended(*run, None),
                Until::StageEnds(run, package, stage) => store.has_ended(*run, Some((package, *stage))),
            })
            .await;
        ended.unwrap_or(true)
    }
}

/// The bytes of `path` as they are written, in chunks, until `until` and
/// everything written before it has been read. A file that does not exist
/// yet is waited for.
pub(crate) fn chunks(server: Arc<Server>, path: PathBuf, until: Until) -> impl Stream<Item = Vec<u8>> + Send {
    struct State {
        server: Arc<Server>,
        path: PathBuf,
        until: Until,
        offset: u64,
        done: bool,
    }
    let state = State { server, path, until, offset: 0, done: false };
    futures_util::stream::unfold(state, |mut state| async move {
        loop {
            let chunk = read_from(&state.path, state.offset).await;
            if !chunk.is_empty() {
                state.offset += chunk.len() as u64;
                return Some((chunk, state));
            }
            if state.done {
                return None;
            }
            // Once the writer is done, one more read takes what it wrote last.
            if state.until.reached(&state.server).await {
                state.done = true;
            } else {
                tokio::time::sleep(POLL).await;
            }
        }
    })
}

/// The complete lines of `path` as they are written (without their line
/// ends), each with its index in the file, until `until`; see [`chunks`].
pub(crate) fn lines(server: Arc<Server>, path: PathBuf, until: Until) -> impl Stream<Item = (u64, String)> + Send {
    use futures_util::StreamExt;
    let mut pending: Vec<u8> = Vec::new();
    let mut index = 0;
    chunks(server, path, until).flat_map(move |chunk| {
        pending.extend_from_slice(&chunk);
        let complete = pending.iter().rposition(|&b| b == b'\n').map_or(0, |end| end + 1);
        // Whole lines only: no character is cut in two.
        let complete: Vec<u8> = pending.drain(..complete).collect();
        let lines: Vec<(u64, String)> = String::from_utf8_lossy(&complete)
            .split_terminator('\n')
            .map(|line| {
                index += 1;
                (index - 1, line.to_string())
            })
            .collect();
        futures_util::stream::iter(lines)
    })
}

/// What `path` holds from `offset` on (nothing when it cannot be read yet).
async fn read_from(path: &std::path::Path, offset: u64) -> Vec<u8> {
    let Ok(mut file) = tokio::fs::File::open(path).await else { return Vec::new() };
    if file.seek(SeekFrom::Start(offset)).await.is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    // At most 1 MiB at a time: a large log streams, it is not held whole.
    let _ = file.take(1 << 20).read_to_end(&mut bytes).await;
    bytes
}
