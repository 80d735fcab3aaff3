//! How plugin objects are written: one line of JSON (the header, with a
//! `format` number), then, for objects that carry a user payload, the raw
//! payload bytes after the newline (no base64, no copy into JSON).

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The `format` every object of this crate carries today.
pub(crate) const FORMAT: u32 = 1;

/// Encodes `header` as one JSON line, followed by `payload` if any.
pub(crate) fn encode<T: Serialize>(header: &T, payload: Option<&[u8]>) -> Result<Bytes, String> {
    let json = serde_json::to_vec(header).map_err(|e| format!("cannot encode record: {e}"))?;
    let extra = payload.map_or(0, |p| p.len() + 1);
    let mut out = BytesMut::with_capacity(json.len() + extra);
    out.put_slice(&json);
    if let Some(payload) = payload {
        out.put_u8(b'\n');
        out.put_slice(payload);
    }
    Ok(out.freeze())
}

/// Decodes what [`encode`] wrote: the header and the payload (empty if none).
/// `format` of the header must be [`FORMAT`].
pub(crate) fn decode<T: DeserializeOwned>(bytes: &Bytes) -> Result<(T, Bytes), String> {
    let split = bytes.iter().position(|&b| b == b'\n');
    let (head, payload) = match split {
        Some(at) => (bytes.slice(..at), bytes.slice(at + 1..)),
        None => (bytes.clone(), Bytes::new()),
    };
    #[derive(serde::Deserialize)]
    struct Format {
        format: Option<u32>,
    }
    let format: Format = serde_json::from_slice(&head)
        .map_err(|e| format!("not a plugin record (bad JSON header: {e})"))?;
    match format.format {
        Some(FORMAT) => {}
        Some(other) => {
            return Err(format!(
                "record format {other} is not {FORMAT}: written by another version of coordinator-plugins; upgrade every worker"
            ))
        }
        None => {
            return Err(
                "no `format` field: not written by coordinator-plugins; is another program writing under this prefix?"
                    .into(),
            )
        }
    }
    let header = serde_json::from_slice(&head).map_err(|e| format!("bad record header: {e}"))?;
    Ok((header, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct H {
        format: u32,
        n: u32,
    }

    #[test]
    fn round_trips_header_and_raw_payload() {
        let h = H {
            format: FORMAT,
            n: 3,
        };
        let bytes = encode(&h, Some(b"a\nb\xff")).unwrap();
        let (back, payload): (H, Bytes) = decode(&bytes).unwrap();
        assert_eq!(back, h);
        assert_eq!(&payload[..], b"a\nb\xff");
        let bare = encode(&h, None).unwrap();
        let (_, payload): (H, Bytes) = decode(&bare).unwrap();
        assert!(payload.is_empty());
        assert!(decode::<H>(&Bytes::from_static(b"{\"n\":1}"))
            .unwrap_err()
            .contains("format"));
        assert!(decode::<H>(&Bytes::from_static(b"{\"format\":9,\"n\":1}"))
            .unwrap_err()
            .contains("upgrade"));
    }
}
