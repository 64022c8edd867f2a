//! The configuration loader (crates/weir-config): gateway files and `kind: Endpoint`
//! manifests in YAML, the same in JSON, directories of files, reloads through the parse
//! cache, and the `krakend.json` import with `weir convert`. All in memory: `from_sources`
//! takes the bytes of files, never reads the disk.
//!
//! Invariants: no input panics the loader; a reload through the cache gives what a fresh
//! load of the same text gives; a KrakenD file that loads converts (`weir convert`) into
//! YAML that loads too; and a configuration that loads compiles into a route table without
//! a panic (the router refusing a shape is an answer, as `weir check` reports it).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use weir_config::{krakend, ConvertCache, Loaded};
use weir_model::Gateway;
use weir_proxy::table::{self, RouteError};

/// Two files of a directory, cut at the first `0xFF` (a byte UTF-8 text never holds).
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fn one(name: &str, bytes: &[u8]) -> Vec<(PathBuf, Vec<u8>)> {
    vec![(PathBuf::from(name), bytes.to_vec())]
}

/// Compiles the loaded gateway as `weir run` would, without what reaches outside the
/// process: authentication (key-set fetches, key files) and backend TLS (CA and key files).
fn compiles(gateway: &Gateway) {
    let mut hermetic = gateway.clone();
    hermetic.endpoints = gateway
        .endpoints
        .iter()
        .map(|ep| {
            let mut ep = (**ep).clone();
            ep.auth = None;
            for b in &mut ep.backends {
                b.tls = None;
            }
            Arc::new(ep)
        })
        .collect();
    if let Err(e @ RouteError::Panic(_)) = table::check(&hermetic) {
        panic!("a loaded configuration panicked the table: {e}");
    }
}

fn loaded(result: weir_config::Result<Loaded>) -> Option<Gateway> {
    result.ok().map(|l| l.gateway)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let gateway = match mode % 5 {
        0 => loaded(weir_config::from_sources(&one("gateway.yaml", rest), false)),
        1 => loaded(weir_config::from_sources(&one("gateway.json", rest), false)),
        2 => {
            let gateway = loaded(weir_config::from_sources(&one("krakend.json", rest), false));
            let text = String::from_utf8_lossy(rest);
            if let Ok(imported) = krakend::import(Path::new("krakend.json"), &text) {
                if gateway.is_some() {
                    let yaml = krakend::to_manifests(Path::new("krakend.json"), &imported)
                        .unwrap_or_else(|e| panic!("a loadable KrakenD file did not convert: {e}"));
                    if let Err(e) =
                        weir_config::from_sources(&one("converted.yaml", yaml.as_bytes()), false)
                    {
                        panic!("weir convert wrote what does not load: {e}\n---\n{yaml}");
                    }
                }
            }
            gateway
        }
        3 => {
            let (a, b) = split(rest);
            let files = vec![
                (PathBuf::from("dir/a.yaml"), a.to_vec()),
                (PathBuf::from("dir/b.yaml"), b.to_vec()),
            ];
            loaded(weir_config::from_sources(&files, true))
        }
        _ => {
            // A reload: the first text, then the second through the same cache.
            let (a, b) = split(rest);
            let mut cache = ConvertCache::default();
            let _ = weir_config::from_sources_cached(&one("gateway.yaml", a), false, &mut cache);
            let cached =
                weir_config::from_sources_cached(&one("gateway.yaml", b), false, &mut cache);
            let fresh = weir_config::from_sources(&one("gateway.yaml", b), false);
            match (&cached, &fresh) {
                (Ok(c), Ok(f)) => assert_eq!(c.gateway, f.gateway, "cached reload differs"),
                (Err(c), Err(f)) => assert_eq!(c.to_string(), f.to_string()),
                _ => panic!(
                    "cached reload and fresh load disagree: {:?} vs {:?}",
                    cached.as_ref().map(|_| ()),
                    fresh.as_ref().map(|_| ())
                ),
            }
            loaded(cached)
        }
    };
    if let Some(gateway) = gateway {
        compiles(&gateway);
    }
});
