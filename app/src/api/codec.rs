//! The encoding of every server function's answer (and of `ApiError`): JSON,
//! read from text. The same as server_fn's `Json`, except that the browser
//! parses answers with `serde_json::from_str` — the parser the hydrated
//! resources already use — instead of `from_slice`, so the WASM carries one
//! JSON deserializer per type instead of two, which keeps the first load of
//! `/` smaller.

use leptos::server_fn::codec::Post;
use leptos::server_fn::{Bytes, ContentType, Decodes, Encodes, Format, FormatType};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// JSON in, JSON out, parsed from UTF-8 text.
pub struct JsonTextEncoding;

/// Use as `output = JsonText` on a `#[server]` function.
pub type JsonText = Post<JsonTextEncoding>;

impl ContentType for JsonTextEncoding {
    const CONTENT_TYPE: &'static str = "application/json";
}

impl FormatType for JsonTextEncoding {
    const FORMAT_TYPE: Format = Format::Text;
}

impl<T: Serialize> Encodes<T> for JsonTextEncoding {
    type Error = serde_json::Error;

    fn encode(output: &T) -> Result<Bytes, Self::Error> {
        serde_json::to_vec(output).map(Bytes::from)
    }
}

impl<T: DeserializeOwned> Decodes<T> for JsonTextEncoding {
    type Error = serde_json::Error;

    fn decode(bytes: Bytes) -> Result<T, Self::Error> {
        let text = std::str::from_utf8(&bytes).map_err(<serde_json::Error as serde::de::Error>::custom)?;
        serde_json::from_str(text)
    }
}
