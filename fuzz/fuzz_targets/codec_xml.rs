//! The XML codec (crates/weir-proxy/src/codec/xml.rs).
//!
//! Invariants: decoding arbitrary bytes never panics (with and without a memory budget);
//! whatever the decoder accepts renders back to XML that the decoder accepts again; and any
//! JSON object renders to well-formed XML with one root (the renderer's promise), which the
//! decoder reads back.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use weir_model::BackendEncoding;
use weir_proxy::codec::{self, xml};

/// Nesting the decoder refuses (its `MAX_DEPTH` is 128); rendered trees stay below it.
const RENDER_DEPTH: u32 = 12;

fn reparse(rendered: &str, what: &dyn std::fmt::Debug) {
    if let Err(e) = xml::xml_to_map(rendered.as_bytes()) {
        panic!("rendered XML does not parse back: {e}\ninput: {what:?}\nrendered: {rendered}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        // Backend bodies: the unbounded decoder and the pipeline's bounded one.
        if let Ok(tree) = xml::xml_to_map(rest) {
            reparse(&xml::map_to_xml(&tree), &tree);
        }
        let _ = codec::decode_limited(BackendEncoding::Xml, false, rest, 4096);
    } else {
        // Rendering: any object the pipeline may hold.
        let mut u = Unstructured::new(rest);
        let Ok(data) = weir_fuzz::object(&mut u, RENDER_DEPTH) else {
            return;
        };
        let rendered = xml::map_to_xml(&data);
        reparse(&rendered, &data);
        let _ = codec::render(weir_model::OutputEncoding::Xml, data, None);
    }
});
