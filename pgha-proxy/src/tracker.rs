//! Which server response answers which request, so the proxy can add
//! messages of its own to a server connection (a re-`Parse` of a prepared
//! statement, a `SET` that restores a client's parameters) and hide their
//! answers, or answer a client message itself (a `ParseComplete` for a
//! statement the server already has) at the right place in the stream.
//!
//! Pure: fed message tags, it says what to do with each server message.
//! The protocol makes this exact: every request has a known terminal
//! response, and after an error in the extended protocol the server skips
//! everything up to the next `Sync`.

use std::collections::VecDeque;

/// A request sent to a server (or answered by the proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `Parse`; the id of the pooled statement it creates, if named.
    Parse(Option<u64>),
    /// `Bind`.
    Bind,
    /// `Describe`.
    Describe,
    /// `Execute`.
    Execute,
    /// `Close`.
    Close,
    /// `Sync`.
    Sync,
    /// A simple `Query`.
    Query,
    /// `FunctionCall`.
    FunctionCall,
    /// Answered by the proxy with this message tag (`1` ParseComplete,
    /// `3` CloseComplete); the server never sees it.
    Synthetic(u8),
    /// `CopyDone` / `CopyFail`: no answer of its own, but it ends copy-in
    /// mode, during which the server ignores `Sync`.
    CopyEnd,
}

impl Request {
    /// Whether `tag` is the last response to this request.
    fn ends_with(self, tag: u8) -> bool {
        match self {
            Request::Parse(_) => tag == b'1',
            Request::Bind => tag == b'2',
            Request::Close => tag == b'3',
            Request::Describe => matches!(tag, b'T' | b'n'),
            Request::Execute => matches!(tag, b'C' | b'I' | b's'),
            Request::Sync | Request::Query | Request::FunctionCall => tag == b'Z',
            Request::Synthetic(_) | Request::CopyEnd => false,
        }
    }

    /// Whether an error ends only this request, not the rest of the batch
    /// (simple-protocol requests run to their ReadyForQuery).
    fn survives_error(self) -> bool {
        matches!(self, Request::Query | Request::FunctionCall | Request::Sync)
    }

    /// Whether the client waits for a ReadyForQuery for this request.
    pub fn owes_ready(self) -> bool {
        matches!(self, Request::Query | Request::FunctionCall | Request::Sync)
    }
}

/// Who sent a request: the client's responses are forwarded, the proxy's
/// are hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Forwarded from the client.
    Client,
    /// Added by the proxy.
    Proxy,
}

/// What to do with one server message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Pass it to the client.
    Forward,
    /// An answer to the proxy's own request: hide it.
    Hide,
}

/// Requests in flight on one server connection, oldest first.
#[derive(Debug, Default)]
pub struct Tracker {
    pending: VecDeque<(Request, Origin)>,
    /// The server is in copy-in mode (it sent CopyInResponse and the
    /// client's CopyDone/CopyFail has not been sent yet): it ignores Sync.
    copy_in: bool,
}

impl Tracker {
    /// Records a request written to the server (or to be answered by the
    /// proxy, for [`Request::Synthetic`]).
    pub fn push(&mut self, request: Request, origin: Origin) {
        match request {
            // Ignored by the server: no ReadyForQuery will answer it.
            Request::Sync if self.copy_in => return,
            Request::CopyEnd if self.copy_in => {
                self.copy_in = false;
                return;
            }
            _ => {}
        }
        self.pending.push_back((request, origin));
    }

    /// No request is waiting for an answer.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// How many ReadyForQuery messages the client still waits for.
    pub fn owed_ready(&self) -> usize {
        self.pending
            .iter()
            .filter(|(r, o)| *o == Origin::Client && r.owes_ready())
            .count()
    }

    /// Whether a request the client sent is still unanswered (the
    /// proxy's own requests do not count).
    pub fn client_waiting(&self) -> bool {
        self.pending.iter().any(|(_, o)| *o == Origin::Client)
    }

    /// Forgets everything in flight (the server connection is gone).
    pub fn clear(&mut self) {
        self.pending.clear();
        self.copy_in = false;
    }

    /// Decides about one server message by its tag. `failed` is called with
    /// the statement id of every `Parse` the server did not carry out (it
    /// failed or was skipped after an error), so the caller stops believing
    /// the server has that statement.
    pub fn on_server(&mut self, tag: u8, mut failed: impl FnMut(u64)) -> Disposition {
        // A CopyDone/CopyFail outside copy-in mode is ignored by the server.
        while self
            .pending
            .front()
            .is_some_and(|(r, _)| *r == Request::CopyEnd)
        {
            self.pending.pop_front();
        }
        let Some(&(request, origin)) = self.pending.front() else {
            // Nothing asked for it (a notice or notification between
            // requests): the client gets it.
            return Disposition::Forward;
        };
        if tag == b'A' {
            // A NOTIFY is the client's whatever request it arrives during.
            return Disposition::Forward;
        }
        if tag == b'G' {
            self.entered_copy_in();
        }
        let hide = |origin| match origin {
            Origin::Client => Disposition::Forward,
            Origin::Proxy => Disposition::Hide,
        };
        if tag == b'E' && !request.survives_error() {
            // Extended protocol: this request failed and the server skips
            // the rest up to Sync. The client must see an error even when
            // the proxy's re-Parse is what failed: its own Bind is skipped.
            self.pending.pop_front();
            if let Request::Parse(Some(id)) = request {
                failed(id);
            }
            while let Some(&(next, _)) = self.pending.front() {
                if next == Request::Sync {
                    break;
                }
                if let Request::Parse(Some(id)) = next {
                    failed(id);
                }
                self.pending.pop_front();
            }
            return match (request, origin) {
                (Request::Parse(_) | Request::Close, Origin::Proxy) => Disposition::Forward,
                _ => hide(origin),
            };
        }
        if request.ends_with(tag) || (tag == b'Z' && !request.owes_ready()) {
            self.pending.pop_front();
            if tag == b'Z' && !request.owes_ready() {
                // Out of step (should not happen): resynchronise on the
                // ReadyForQuery rather than hide the client's answers.
                while let Some((next, _)) = self.pending.pop_front() {
                    if next.owes_ready() {
                        break;
                    }
                }
                return Disposition::Forward;
            }
        }
        hide(origin)
    }

    /// CopyInResponse: until the client's CopyDone/CopyFail the server
    /// ignores Sync, so the Syncs already sent after the request that
    /// started the copy are not answered; later ones are not recorded.
    fn entered_copy_in(&mut self) {
        let mut i = 1;
        while let Some(&(request, _)) = self.pending.get(i) {
            match request {
                Request::Sync => {
                    self.pending.remove(i);
                }
                Request::CopyEnd => {
                    // The client already ended the copy: what follows
                    // counts again.
                    self.pending.remove(i);
                    return;
                }
                _ => i += 1,
            }
        }
        self.copy_in = true;
    }

    /// The next answer the proxy owes the client itself, once everything
    /// before it has been answered.
    pub fn next_synthetic(&mut self) -> Option<u8> {
        match self.pending.front() {
            Some(&(Request::Synthetic(tag), _)) => {
                self.pending.pop_front();
                Some(tag)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tracker: &mut Tracker, tags: &[u8]) -> (Vec<u8>, Vec<u64>) {
        let mut seen = Vec::new();
        let mut failed = Vec::new();
        for &tag in tags {
            if tracker.on_server(tag, |id| failed.push(id)) == Disposition::Forward {
                seen.push(tag);
            }
            while let Some(t) = tracker.next_synthetic() {
                seen.push(t);
            }
        }
        (seen, failed)
    }

    #[test]
    fn the_proxys_reparse_is_hidden_and_the_clients_answers_pass() {
        let mut t = Tracker::default();
        t.push(Request::Close, Origin::Proxy);
        t.push(Request::Parse(Some(7)), Origin::Proxy);
        t.push(Request::Bind, Origin::Client);
        t.push(Request::Execute, Origin::Client);
        t.push(Request::Sync, Origin::Client);
        let (seen, failed) = run(&mut t, b"312DDCZ");
        assert_eq!(seen, b"2DDCZ");
        assert!(failed.is_empty());
        assert!(t.is_empty());
    }

    #[test]
    fn a_parse_the_server_already_has_is_answered_in_its_place() {
        let mut t = Tracker::default();
        t.push(Request::Bind, Origin::Client);
        t.push(Request::Execute, Origin::Client);
        t.push(Request::Synthetic(b'1'), Origin::Client);
        t.push(Request::Describe, Origin::Client);
        t.push(Request::Sync, Origin::Client);
        assert_eq!(t.next_synthetic(), None, "not before the Bind's answers");
        let (seen, _) = run(&mut t, b"2CtTZ");
        assert_eq!(seen, b"2C1tTZ");
    }

    #[test]
    fn after_an_error_the_skipped_requests_are_dropped_up_to_sync() {
        let mut t = Tracker::default();
        t.push(Request::Parse(Some(3)), Origin::Client);
        t.push(Request::Bind, Origin::Client);
        t.push(Request::Synthetic(b'1'), Origin::Client);
        t.push(Request::Parse(Some(4)), Origin::Proxy);
        t.push(Request::Execute, Origin::Client);
        t.push(Request::Sync, Origin::Client);
        t.push(Request::Query, Origin::Client);
        let (seen, failed) = run(&mut t, b"EZCZ");
        assert_eq!(seen, b"EZCZ");
        assert_eq!(failed, vec![3, 4], "neither statement exists on the server");
        assert!(t.is_empty());
    }

    #[test]
    fn a_failed_reparse_by_the_proxy_still_reaches_the_client() {
        let mut t = Tracker::default();
        t.push(Request::Parse(Some(9)), Origin::Proxy);
        t.push(Request::Bind, Origin::Client);
        t.push(Request::Sync, Origin::Client);
        let (seen, failed) = run(&mut t, b"EZ");
        assert_eq!(seen, b"EZ");
        assert_eq!(failed, vec![9]);
    }

    #[test]
    fn the_proxys_set_is_hidden_entirely_even_its_error() {
        let mut t = Tracker::default();
        t.push(Request::Query, Origin::Proxy);
        t.push(Request::Query, Origin::Client);
        let (seen, _) = run(&mut t, b"SCEZTDCZ");
        assert_eq!(seen, b"TDCZ");
        assert_eq!(t.owed_ready(), 0);
    }

    #[test]
    fn pipelined_requests_owe_one_ready_each() {
        let mut t = Tracker::default();
        t.push(Request::Query, Origin::Proxy);
        t.push(Request::Query, Origin::Client);
        t.push(Request::Parse(None), Origin::Client);
        t.push(Request::Sync, Origin::Client);
        assert_eq!(t.owed_ready(), 2);
        run(&mut t, b"CZCZ");
        assert_eq!(t.owed_ready(), 1);
    }

    #[test]
    fn messages_nobody_asked_for_are_forwarded() {
        let mut t = Tracker::default();
        let (seen, _) = run(&mut t, b"NAS");
        assert_eq!(seen, b"NAS");
    }

    #[test]
    fn syncs_sent_during_copy_in_are_not_waited_for() {
        // A driver's extended-protocol COPY FROM STDIN: Bind, Execute, Sync
        // before the data (ignored by the server in copy-in mode), then the
        // data, CopyDone and a Sync, then a Close answered by the proxy.
        let mut t = Tracker::default();
        for r in [Request::Bind, Request::Execute, Request::Sync] {
            t.push(r, Origin::Client);
        }
        assert_eq!(run(&mut t, b"2G").0, b"2G");
        t.push(Request::CopyEnd, Origin::Client);
        t.push(Request::Sync, Origin::Client);
        t.push(Request::Synthetic(b'3'), Origin::Client);
        t.push(Request::Sync, Origin::Client);
        assert_eq!(
            run(&mut t, b"CZZ").0,
            b"CZ3Z",
            "the proxy's answer in its place"
        );
        assert!(t.is_empty());
        // The copy ended before the server said it began.
        for r in [
            Request::Bind,
            Request::Execute,
            Request::Sync,
            Request::CopyEnd,
            Request::Sync,
        ] {
            t.push(r, Origin::Client);
        }
        assert_eq!(run(&mut t, b"2GCZ").0, b"2GCZ");
        assert!(t.is_empty());
        // A simple COPY that fails: CopyFail, then the Query's error and
        // ReadyForQuery.
        t.push(Request::Query, Origin::Client);
        assert_eq!(run(&mut t, b"G").0, b"G");
        t.push(Request::CopyEnd, Origin::Client);
        assert_eq!(run(&mut t, b"EZ").0, b"EZ");
        assert!(t.is_empty());
    }
}
