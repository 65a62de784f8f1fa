//! Batching without a timer, shared by the writer and the view reader: a
//! batch is whatever queued while the previous one ran, so a lone request
//! waits for nobody and a crowd shares one transaction or one read.

use tokio::sync::mpsc;

/// Waits for one item, then takes whatever else is already queued (up to `max`).
pub(crate) async fn next_batch<T>(receiver: &mut mpsc::Receiver<T>, max: usize) -> Option<Vec<T>> {
    let first = receiver.recv().await?;
    let mut batch = vec![first];
    while batch.len() < max {
        match receiver.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    Some(batch)
}
