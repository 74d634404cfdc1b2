//! Peer frames: length, HMAC-SHA256 tag, JSON envelope. Pure: no sockets.
//!
//! ```text
//! u32 big-endian length of the rest | 32-byte tag | JSON Envelope
//! ```
//!
//! The tag covers the whole envelope, and the envelope names sender,
//! receiver, direction and call id, so an authentic frame cannot be
//! redirected to another member or replayed as an answer to another call.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::types::MemberId;

/// Frames longer than this are refused before anything is allocated (a
/// snapshot chunk of the record is a few kilobytes).
pub const MAX_FRAME: usize = 16 << 20;
const TAG: usize = 32;

/// The secret every member of one cluster shares; frames not tagged with
/// it are dropped unread.
#[derive(Clone)]
pub struct SharedSecret(Vec<u8>);

impl SharedSecret {
    /// A secret from its bytes. Use at least 32 random bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        SharedSecret(bytes.into())
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; this cannot fail.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

/// Which way a frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// A call to the receiver.
    Call,
    /// The answer to the receiver's call.
    Answer,
}

/// What a frame carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// The sender.
    pub from: MemberId,
    /// The receiver: any other member drops the frame.
    pub to: MemberId,
    /// Call or answer.
    pub direction: Direction,
    /// The call id; an answer repeats its call's.
    pub id: u64,
    /// The call or answer.
    pub body: T,
}

/// Why a frame was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Longer than [`MAX_FRAME`] (or shorter than a tag).
    #[error("frame length {0} out of bounds")]
    Length(usize),
    /// The tag does not match: another secret, or altered bytes.
    #[error("frame not authenticated")]
    Forged,
    /// Authentic but unreadable (a peer of another version).
    #[error("frame malformed: {0}")]
    Malformed(String),
}

/// The whole frame for `envelope`, length prefix included.
pub fn seal<T: Serialize>(
    secret: &SharedSecret,
    envelope: &Envelope<T>,
) -> Result<Vec<u8>, FrameError> {
    let json = serde_json::to_vec(envelope).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = TAG + json.len();
    if len > MAX_FRAME {
        return Err(FrameError::Length(len));
    }
    let mut mac = secret.mac();
    mac.update(&json);
    let mut frame = Vec::with_capacity(4 + len);
    frame.extend_from_slice(&(len as u32).to_be_bytes());
    frame.extend_from_slice(&mac.finalize().into_bytes());
    frame.extend_from_slice(&json);
    Ok(frame)
}

/// Checks a frame's announced length before its body is read.
pub fn check_length(len: u32) -> Result<usize, FrameError> {
    let len = len as usize;
    if !(TAG..=MAX_FRAME).contains(&len) {
        return Err(FrameError::Length(len));
    }
    Ok(len)
}

/// The envelope of a frame body (what follows the length), once its tag is
/// verified (in constant time) — nothing is parsed before.
pub fn open<T: DeserializeOwned>(
    secret: &SharedSecret,
    body: &[u8],
) -> Result<Envelope<T>, FrameError> {
    if body.len() < TAG {
        return Err(FrameError::Length(body.len()));
    }
    let (tag, json) = body.split_at(TAG);
    let mut mac = secret.mac();
    mac.update(json);
    mac.verify_slice(tag).map_err(|_| FrameError::Forged)?;
    serde_json::from_slice(json).map_err(|e| FrameError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope<String> {
        Envelope {
            from: 1,
            to: 2,
            direction: Direction::Call,
            id: 7,
            body: "vote".into(),
        }
    }

    fn body(frame: &[u8]) -> &[u8] {
        &frame[4..]
    }

    #[test]
    fn a_sealed_frame_opens_with_the_same_secret() {
        let secret = SharedSecret::new(*b"0123456789abcdef0123456789abcdef");
        let frame = seal(&secret, &envelope()).expect("seal");
        let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        assert_eq!(check_length(len), Ok(frame.len() - 4));
        assert_eq!(open::<String>(&secret, body(&frame)), Ok(envelope()));
    }

    #[test]
    fn another_secret_or_one_flipped_bit_is_forged() {
        let secret = SharedSecret::new(*b"right");
        let frame = seal(&SharedSecret::new(*b"wrong"), &envelope()).expect("seal");
        assert_eq!(
            open::<String>(&secret, body(&frame)),
            Err(FrameError::Forged)
        );

        let mut frame = seal(&secret, &envelope()).expect("seal");
        let last = frame.len() - 3;
        frame[last] ^= 1;
        assert_eq!(
            open::<String>(&secret, body(&frame)),
            Err(FrameError::Forged)
        );
    }

    #[test]
    fn lengths_are_bounded_before_reading() {
        assert_eq!(check_length(3), Err(FrameError::Length(3)));
        assert!(check_length(u32::MAX).is_err());
        assert_eq!(
            open::<String>(&SharedSecret::new(*b"k"), b"short"),
            Err(FrameError::Length(5))
        );
    }
}
