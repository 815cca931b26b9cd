//! Payload generators: the content of one original record, from the seed and its index.
//!
//! Every generator writes exactly `size` bytes. JSON payloads stay valid JSON by padding
//! with spaces inside the last value's closing brace; text is ASCII (hence UTF-8).

use crate::words::WORDS;
use crate::{derive_seed, plan::below};
use dedup_lab_core::PayloadType;
use dedup_lab_core::time::rfc3339_from_unix_ms;
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256StarStar;
use std::io::Write;
use std::sync::OnceLock;

/// Writes the `size` bytes of original record `source` of `payload` into `buf` (appending).
///
/// Panics for [`PayloadType::RealWorld`], whose bytes come from files.
pub fn generate(payload: PayloadType, seed: u64, source: u64, size: usize, buf: &mut Vec<u8>) {
    let mut rng = Xoshiro256StarStar::from_seed(derive_seed("content", &[seed, payload.tag(), source]));
    let start = buf.len();
    match payload {
        PayloadType::RandomBinary => {
            buf.resize(start + size, 0);
            rng.fill_bytes(&mut buf[start..]);
        }
        PayloadType::StructuredJson => ndjson(&mut rng, source, size, buf),
        PayloadType::TextDocument => text(&mut rng, size, buf),
        PayloadType::UuidKeys => uuid_lines(&mut rng, size, buf),
        PayloadType::JsonbDocuments => document(&mut rng, source, size, buf),
        PayloadType::RealWorld => {
            panic!("real-world records are read from their source (Dataset::try_par_records), not generated")
        }
    }
    debug_assert_eq!(buf.len() - start, size);
}

const FIRST: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia",
    "peggy", "rupert", "sybil", "trent", "victor", "walter", "yara",
];
const LAST: &[&str] = &[
    "smith", "jones", "garcia", "miller", "davis", "martin", "lopez", "wilson", "moore", "taylor", "anderson",
    "thomas", "jackson", "white", "harris", "clark",
];
const CURRENCY: &[&str] = &["EUR", "USD", "GBP", "CHF", "JPY", "SEK"];
const STATUS: &[&str] = &["pending", "settled", "refunded", "failed", "authorized"];
const COUNTRY: &[&str] = &["DE", "FR", "US", "GB", "NL", "SE", "ES", "IT", "JP", "CH"];
const CITY: &[&str] =
    &["Berlin", "Paris", "Boston", "Leeds", "Utrecht", "Malmo", "Sevilla", "Torino", "Osaka", "Basel"];
const COLOR: &[&str] = &["red", "green", "blue", "black", "white", "yellow"];
const SIZE: &[&str] = &["XS", "S", "M", "L", "XL"];
const TAGS: &[&str] = &["priority", "gift", "bulk", "repeat", "express", "fragile", "return"];

fn pick<'a>(rng: &mut Xoshiro256StarStar, list: &[&'a str]) -> &'a str {
    list[below(rng, list.len() as u64) as usize]
}

/// A timestamp in 2020–2025 as RFC 3339 (second precision kept, millis dropped).
fn timestamp(rng: &mut Xoshiro256StarStar) -> String {
    let ms = 1_577_836_800_000 + below(rng, 189_216_000) as i64 * 1000;
    let mut s = rfc3339_from_unix_ms(ms);
    s.replace_range(19..23, "");
    s
}

/// Pads `buf[start..]` to `size` bytes by inserting spaces before the byte at `close`
/// (the closing brace of the last JSON value).
///
/// When not even one full value fitted, writes `small` instead (a short object that still
/// identifies the record, so small records of different originals never coincide), padded
/// the same way; if that does not fit either, an empty object padded with spaces.
fn pad_json(
    buf: &mut Vec<u8>,
    start: usize,
    size: usize,
    close: Option<usize>,
    tail: &[u8],
    small: impl FnOnce() -> Vec<u8>,
) {
    let len = buf.len() - start;
    match close {
        Some(pos) if len <= size => {
            let spaces = vec![b' '; size - len];
            buf.splice(pos..pos, spaces);
        }
        _ => {
            buf.truncate(start);
            let small = small();
            let object: &[u8] = if small.len() + tail.len() <= size { &small } else { b"{}" };
            buf.extend_from_slice(&object[..object.len() - 1]);
            buf.resize(start + size - 1 - tail.len(), b' ');
            buf.extend_from_slice(b"}");
            buf.extend_from_slice(tail);
        }
    }
}

/// 16 lower-case hex digits from the record's stream, for the short objects of [`pad_json`].
fn token(rng: &mut Xoshiro256StarStar) -> String {
    format!("{:016x}", rng.next_u64())
}

/// NDJSON of flat payment-like records.
fn ndjson(rng: &mut Xoshiro256StarStar, source: u64, size: usize, buf: &mut Vec<u8>) {
    let start = buf.len();
    let mut line = Vec::with_capacity(256);
    let mut close = None;
    for n in 0u64.. {
        line.clear();
        let (first, last) = (pick(rng, FIRST), pick(rng, LAST));
        let cents = below(rng, 500_000);
        writeln!(
            line,
            "{{\"id\":{},\"user\":\"{first}_{last}\",\"email\":\"{first}.{last}@example.com\",\"amount\":{}.{:02},\"currency\":\"{}\",\"status\":\"{}\",\"country\":\"{}\",\"score\":{},\"created_at\":\"{}\"}}",
            source * 1_000_000 + n,
            cents / 100,
            cents % 100,
            pick(rng, CURRENCY),
            pick(rng, STATUS),
            pick(rng, COUNTRY),
            below(rng, 101),
            timestamp(rng),
        )
        .expect("writing to a Vec cannot fail");
        if buf.len() - start + line.len() > size {
            break;
        }
        buf.extend_from_slice(&line);
        close = Some(buf.len() - 2); // the `}` before the newline
    }
    pad_json(buf, start, size, close, b"\n", || {
        format!("{{\"id\":{},\"token\":\"{}\"}}", source * 1_000_000, token(rng)).into_bytes()
    });
}

/// One nested JSON document (an order with a customer, tags and line items).
fn document(rng: &mut Xoshiro256StarStar, source: u64, size: usize, buf: &mut Vec<u8>) {
    let start = buf.len();
    let (first, last) = (pick(rng, FIRST), pick(rng, LAST));
    write!(
        buf,
        "{{\"doc_id\":\"order-{source}\",\"type\":\"order\",\"created_at\":\"{}\",\"customer\":{{\"id\":{},\"name\":\"{first} {last}\",\"address\":{{\"city\":\"{}\",\"country\":\"{}\",\"zip\":\"{:05}\"}}}},\"tags\":[\"{}\",\"{}\"],\"items\":[",
        timestamp(rng),
        below(rng, 10_000_000),
        pick(rng, CITY),
        pick(rng, COUNTRY),
        below(rng, 100_000),
        pick(rng, TAGS),
        pick(rng, TAGS),
    )
    .expect("writing to a Vec cannot fail");
    let mut item = Vec::with_capacity(200);
    let mut first_item = true;
    loop {
        item.clear();
        if !first_item {
            item.push(b',');
        }
        let cents = below(rng, 100_000);
        write!(
            item,
            "{{\"sku\":\"SKU-{:06}\",\"qty\":{},\"price\":{}.{:02},\"attrs\":{{\"color\":\"{}\",\"size\":\"{}\",\"gift\":{}}}}}",
            below(rng, 1_000_000),
            1 + below(rng, 9),
            cents / 100,
            cents % 100,
            pick(rng, COLOR),
            pick(rng, SIZE),
            below(rng, 2) == 1,
        )
        .expect("writing to a Vec cannot fail");
        // Leave room for the closing `]}`.
        if buf.len() - start + item.len() + 2 > size {
            break;
        }
        buf.extend_from_slice(&item);
        first_item = false;
    }
    buf.extend_from_slice(b"]}");
    let close = buf.len() - 1;
    pad_json(buf, start, size, Some(close), b"", || {
        format!("{{\"doc_id\":\"order-{source}\",\"token\":\"{}\"}}", token(rng)).into_bytes()
    });
}

/// Cumulative Zipf weights over [`WORDS`], scaled to u64.
fn zipf_cdf() -> &'static [u64] {
    static CDF: OnceLock<Vec<u64>> = OnceLock::new();
    CDF.get_or_init(|| {
        let weights: Vec<f64> = (0..WORDS.len()).map(|r| 1.0 / (r as f64 + 1.0)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        weights
            .iter()
            .map(|w| {
                acc += w / total;
                // Fixed-point so the draw below is integer arithmetic on every platform.
                (acc.min(1.0) * (1u64 << 53) as f64) as u64
            })
            .collect()
    })
}

/// Natural-language-like text: sentences of Zipf-distributed words in paragraphs.
///
/// Paragraphs are built in a small buffer and copied up to `size`, so the record never
/// outgrows its `size` bytes of capacity (growing it would double its memory).
fn text(rng: &mut Xoshiro256StarStar, size: usize, buf: &mut Vec<u8>) {
    let start = buf.len();
    let cdf = zipf_cdf();
    let mut para = Vec::with_capacity(4096);
    while buf.len() - start < size {
        para.clear();
        let sentences = 3 + below(rng, 6);
        for _ in 0..sentences {
            let words = 5 + below(rng, 16);
            for w in 0..words {
                let x = rng.next_u64() >> 11;
                let rank = cdf.partition_point(|&c| c <= x).min(WORDS.len() - 1);
                let word = WORDS[rank].as_bytes();
                if w == 0 {
                    para.push(word[0].to_ascii_uppercase());
                    para.extend_from_slice(&word[1..]);
                } else {
                    para.push(b' ');
                    para.extend_from_slice(word);
                }
                if w + 1 < words && below(rng, 12) == 0 {
                    para.push(b',');
                }
            }
            para.extend_from_slice(b". ");
        }
        para.pop();
        para.extend_from_slice(b"\n\n");
        let room = size - (buf.len() - start);
        buf.extend_from_slice(&para[..para.len().min(room)]);
    }
}

/// Lines of `<uuid v4>,<small value>`.
fn uuid_lines(rng: &mut Xoshiro256StarStar, size: usize, buf: &mut Vec<u8>) {
    let start = buf.len();
    let mut line = Vec::with_capacity(48);
    loop {
        line.clear();
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40; // version 4
        b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
        // `8-4-4-4-12` hex digits, a comma, the value, a newline: written byte by byte (the
        // formatting machinery and a String per line cost more than the generator itself).
        for (i, group) in [&b[0..4], &b[4..6], &b[6..8], &b[8..10], &b[10..16]].into_iter().enumerate() {
            if i > 0 {
                line.push(b'-');
            }
            push_hex(&mut line, group);
        }
        line.push(b',');
        push_decimal(&mut line, below(rng, 100_000));
        line.push(b'\n');
        if buf.len() - start + line.len() > size {
            break;
        }
        buf.extend_from_slice(&line);
    }
    // Pad the last line's value with trailing spaces, keeping the final newline.
    let missing = size - (buf.len() - start);
    if missing > 0 {
        if buf.len() > start {
            buf.pop();
            buf.resize(buf.len() + missing, b' ');
            buf.push(b'\n');
        } else {
            buf.resize(start + size, b' ');
        }
    }
}

/// Appends `b` as lower-case hex digits.
fn push_hex(out: &mut Vec<u8>, b: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &x in b {
        out.push(DIGITS[usize::from(x >> 4)]);
        out.push(DIGITS[usize::from(x & 0xf)]);
    }
}

/// Appends `v` in decimal, as `{}` writes it.
fn push_decimal(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_writers_write_what_the_formatting_machinery_writes() {
        let mut rng = Xoshiro256StarStar::seed_from_u64(7);
        for _ in 0..2000 {
            let v = rng.next_u64() >> below(&mut rng, 64);
            let mut out = Vec::new();
            push_decimal(&mut out, v);
            assert_eq!(out, v.to_string().into_bytes());
            let mut out = Vec::new();
            push_hex(&mut out, &v.to_be_bytes());
            assert_eq!(out, format!("{v:016x}").into_bytes());
        }
        let mut out = Vec::new();
        push_decimal(&mut out, 0);
        assert_eq!(out, b"0");
    }

    fn gen_one(p: PayloadType, source: u64, size: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        generate(p, 42, source, size, &mut buf);
        buf
    }

    #[test]
    fn every_type_has_exact_size() {
        for p in PayloadType::ALL {
            for size in [64, 65, 100, 333, 4096, 65_537, 524_288] {
                assert_eq!(gen_one(p, 3, size).len(), size, "{p} {size}");
            }
        }
    }

    #[test]
    fn json_types_are_valid_json() {
        for size in [64, 200, 4096, 100_003] {
            let doc = gen_one(PayloadType::JsonbDocuments, 1, size);
            serde_json::from_slice::<serde_json::Value>(&doc).unwrap_or_else(|e| panic!("{size}: {e}"));
            let nd = gen_one(PayloadType::StructuredJson, 1, size);
            let text = std::str::from_utf8(&nd).unwrap();
            assert!(text.ends_with('\n'));
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{size}: {e}: {line}"));
                assert!(v.is_object());
            }
        }
    }

    #[test]
    fn text_and_uuids_are_utf8_and_well_formed() {
        let t = gen_one(PayloadType::TextDocument, 9, 10_000);
        let s = std::str::from_utf8(&t).unwrap();
        assert!(s.contains(' ') && s.contains(". "));
        let u = gen_one(PayloadType::UuidKeys, 9, 10_000);
        let s = std::str::from_utf8(&u).unwrap();
        for line in s.lines() {
            let (id, value) = line.split_once(',').unwrap();
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "4");
            value.trim_end().parse::<u32>().unwrap();
        }
    }

    #[test]
    fn small_records_of_different_originals_differ() {
        // Below ~250 bytes not even one JSON line/document fits; such records must still
        // be distinct, or a U0 dataset of small records would be all duplicates.
        for p in PayloadType::ALL {
            for size in [64, 65, 100, 150, 200, 230, 250, 300, 400] {
                let records: Vec<Vec<u8>> = (0..50).map(|s| gen_one(p, s, size)).collect();
                let distinct: std::collections::HashSet<&Vec<u8>> = records.iter().collect();
                assert_eq!(distinct.len(), records.len(), "{p} {size}");
            }
        }
        // The same source under another seed differs too.
        for p in PayloadType::ALL {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            generate(p, 1, 3, 64, &mut a);
            generate(p, 2, 3, 64, &mut b);
            assert_ne!(a, b, "{p}");
        }
    }

    #[test]
    fn small_json_records_are_valid_json() {
        for size in (64..400).step_by(7) {
            for source in [0, 7, 99_999_999] {
                let doc = gen_one(PayloadType::JsonbDocuments, source, size);
                assert_eq!(doc.len(), size);
                serde_json::from_slice::<serde_json::Value>(&doc).unwrap_or_else(|e| panic!("{size}: {e}"));
                let nd = gen_one(PayloadType::StructuredJson, source, size);
                assert_eq!(nd.len(), size);
                let text = std::str::from_utf8(&nd).unwrap();
                assert!(text.ends_with('\n'), "{size}");
                for line in text.lines() {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{size}: {e}"));
                    assert!(v.is_object());
                }
            }
        }
    }

    #[test]
    fn content_depends_on_source_only() {
        for p in PayloadType::ALL {
            assert_eq!(gen_one(p, 5, 4096), gen_one(p, 5, 4096));
            assert_ne!(gen_one(p, 5, 4096), gen_one(p, 6, 4096));
        }
    }
}
