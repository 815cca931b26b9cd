use super::*;
use crate::payload::generate;
use dedup_lab_core::{PayloadType, Value};

fn file(p: PayloadType, source: u64, size: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    generate(p, 7, source, size, &mut buf);
    buf
}

/// The format of a dataset of `p` whose records are `size` bytes.
fn format_for(p: PayloadType, size: usize) -> Format {
    let spec = crate::DatasetSpec {
        payload: p,
        grade: "U0".parse().unwrap(),
        records: 1,
        record_size: crate::RecordSize::Fixed(size as u64),
        seed: 7,
        real_world: None,
    };
    match for_dataset(&spec) {
        Support::Native(f) => f,
        Support::Blob(why) => panic!("{p}: {why}"),
    }
}

fn format_of(p: PayloadType) -> Format {
    match support(p.name()) {
        Support::Native(f) => f,
        Support::Blob(why) => panic!("{p}: {why}"),
    }
}

fn rows(p: PayloadType, data: &[u8]) -> Vec<NativeRecord> {
    format_for(p, data.len()).parse("test.file", data).collect::<Result<Vec<_>, _>>().unwrap()
}

fn encoded(p: PayloadType, data: &[u8]) -> Vec<Vec<u8>> {
    let schema = format_for(p, data.len()).schema();
    rows(p, data).iter().map(|r| schema.encode(&r.row).unwrap()).collect()
}

/// JSON equality as values: numbers compare by value (`198.00` equals `198`), objects
/// whatever their key order.
fn json_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => x.as_f64() == y.as_f64(),
        (J::Array(x), J::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y)),
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

const SIZES: [usize; 5] = [64, 300, 4096, 65_537, 524_288];

#[test]
fn structured_json_lines_round_trip_json_equal_and_byte_exact_but_for_padding() {
    for size in SIZES {
        let data = file(PayloadType::StructuredJson, 3, size);
        let text = std::str::from_utf8(&data).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let enc = encoded(PayloadType::StructuredJson, &data);
        assert_eq!(enc.len(), lines.len(), "{size}: one record per line");
        for (i, (line, e)) in lines.iter().zip(&enc).enumerate() {
            let (a, b): (serde_json::Value, serde_json::Value) =
                (serde_json::from_str(line).unwrap(), serde_json::from_slice(e).unwrap());
            assert!(json_equal(&a, &b), "{size}: line {} differs as JSON", i + 1);
            if i + 1 < lines.len() {
                assert_eq!(line.as_bytes(), &e[..], "{size}: line {} differs as bytes", i + 1);
            }
        }
        let rs = rows(PayloadType::StructuredJson, &data);
        if size == 64 {
            // Too small for a line: the generator's short object, with its token column.
            assert_eq!(rs.len(), 1);
            assert!(matches!(rs[0].row.last(), Some(Value::Text(t)) if t.len() == 16), "{:?}", rs[0].row);
        }
        if size >= 4096 {
            let r = &rs[0].row;
            assert!(matches!(r[0], Value::Int(id) if id == 3_000_000), "{r:?}");
            assert!(matches!(r[3], Value::Decimal(_)) && matches!(r[8], Value::Timestamp(_)), "{r:?}");
        }
        assert!(rs.iter().enumerate().all(|(i, r)| r.ordinal == i as u64 && r.line == i as u64 + 1));
    }
}

#[test]
fn json_documents_round_trip_json_equal() {
    for size in SIZES {
        let data = file(PayloadType::JsonbDocuments, 5, size);
        let enc = encoded(PayloadType::JsonbDocuments, &data);
        assert_eq!(enc.len(), 1);
        let (a, b): (serde_json::Value, serde_json::Value) =
            (serde_json::from_slice(&data).unwrap(), serde_json::from_slice(&enc[0]).unwrap());
        assert!(json_equal(&a, &b), "{size}: the document differs as JSON");
        assert!(enc[0].len() <= data.len(), "the canonical form has no padding");
    }
}

#[test]
fn text_paragraphs_round_trip_exactly() {
    for size in SIZES {
        let data = file(PayloadType::TextDocument, 9, size);
        let paras: Vec<String> = rows(PayloadType::TextDocument, &data)
            .into_iter()
            .map(|r| match &r.row[0] {
                Value::Text(t) => t.clone(),
                v => panic!("{v:?}"),
            })
            .collect();
        assert!(paras.iter().all(|p| !p.is_empty() && !p.contains("\n\n")));
        let text = std::str::from_utf8(&data).unwrap();
        // Exact: the paragraphs joined by their blank lines are the file (a file that ends
        // with a separator ends with one more).
        assert_eq!(paras.join("\n\n"), text.strip_suffix("\n\n").unwrap_or(text), "{size}");
        assert_eq!(paras, text.split("\n\n").filter(|p| !p.is_empty()).collect::<Vec<_>>());
    }
}

#[test]
fn paragraphs_follow_split_semantics_on_odd_separators() {
    for text in ["a\n\n\nb", "a\n\n\n\nb", "\n\na\n\n", "a\nb\n\nc\n", "\n", "a", "a\n\n\n\n\n\nb\n\n\n"] {
        let paras: Vec<String> = rows(PayloadType::TextDocument, text.as_bytes())
            .into_iter()
            .map(|r| match &r.row[0] {
                Value::Text(t) => t.clone(),
                v => panic!("{v:?}"),
            })
            .collect();
        let want: Vec<&str> = text.split("\n\n").filter(|p| !p.is_empty()).collect();
        assert_eq!(paras, want, "{text:?}");
    }
}

#[test]
fn uuid_lines_round_trip_exactly_without_the_padding() {
    for size in SIZES {
        let data = file(PayloadType::UuidKeys, 11, size);
        let enc = encoded(PayloadType::UuidKeys, &data);
        let text = std::str::from_utf8(&data).unwrap();
        let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches(' ')).collect();
        let back: Vec<String> = enc.iter().map(|e| String::from_utf8(e.clone()).unwrap()).collect();
        assert_eq!(back, lines, "{size}");
        assert!(
            rows(PayloadType::UuidKeys, &data).iter().all(|r| matches!(r.row[..], [Value::Uuid(_), Value::Int(_)]))
        );
    }
}

#[test]
fn binary_chunks_concatenate_to_the_file() {
    for size in SIZES {
        let data = file(PayloadType::RandomBinary, 13, size);
        let enc = encoded(PayloadType::RandomBinary, &data);
        assert_eq!(enc.len(), size.div_ceil(BINARY_CHUNK));
        assert!(enc[..enc.len() - 1].iter().all(|c| c.len() == BINARY_CHUNK));
        assert_eq!(enc.concat(), data);
    }
}

#[test]
fn a_duplicated_file_yields_identical_records() {
    let spec = crate::DatasetSpec {
        payload: PayloadType::StructuredJson,
        grade: "U50".parse().unwrap(),
        records: 8,
        record_size: crate::RecordSize::Fixed(8192),
        seed: 1,
        real_world: None,
    };
    for p in PayloadType::ALL {
        let ds = crate::Dataset::new(crate::DatasetSpec { payload: p, ..spec.clone() }).unwrap();
        let all: Vec<_> = ds.records().collect();
        let mut dups = 0;
        for r in all.iter().filter(|r| r.is_duplicate()) {
            let original = &all[r.source as usize];
            assert_eq!(rows(p, &r.data), rows(p, &original.data), "{p}: record {} vs {}", r.index, r.source);
            dups += 1;
        }
        assert_eq!(dups, 4, "{p}");
    }
}

#[test]
fn parsing_streams_through_small_buffers() {
    for p in PayloadType::ALL {
        let data = file(p, 17, 100_000);
        let whole = rows(p, &data);
        let small = std::io::BufReader::with_capacity(7, &data[..]);
        let streamed: Vec<_> = format_for(p, data.len()).parse("f", small).collect::<Result<Vec<_>, _>>().unwrap();
        assert_eq!(streamed, whole, "{p}");
    }
}

fn errors(p: PayloadType, input: &[u8]) -> (Vec<NativeRecord>, Vec<NativeError>) {
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for r in format_of(p).parse("records/r00000003.ndjson", input) {
        match r {
            Ok(r) => ok.push(r),
            Err(e) => bad.push(e),
        }
    }
    (ok, bad)
}

#[test]
fn malformed_json_lines_name_file_and_line_and_parsing_goes_on() {
    let good = r#"{"id":1,"user":"a","email":"a@x","amount":1.5,"currency":"EUR","status":"s","country":"DE","score":3,"created_at":"2021-01-02T03:04:05Z"}"#;
    let input = format!("{good}\n{{\"id\":2,\"user\":\n\n{good}\n[1,2]\n");
    let (ok, bad) = errors(PayloadType::StructuredJson, input.as_bytes());
    assert_eq!(ok.len(), 2);
    assert_eq!((ok[0].line, ok[1].line), (1, 4), "the blank line 3 is no record");
    assert_eq!((ok[0].ordinal, ok[1].ordinal), (0, 2), "the bad record keeps its ordinal");
    assert_eq!(bad.len(), 2);
    let msg = bad[0].to_string();
    assert!(msg.starts_with("records/r00000003.ndjson line 2: malformed JSON"), "{msg}");
    assert!(bad[1].to_string().contains("line 5: expected a JSON object, found an array"), "{}", bad[1]);
    assert_eq!(ok[0].row[3], Value::Decimal(150));

    let cases = [
        (r#"{"id":"x"}"#, r#"field "id": expected an integer, found a string"#),
        (r#"{"amount":1.234}"#, r#"field "amount": 1.234 does not fit a decimal with 2 fraction digits"#),
        (r#"{"created_at":"yesterday"}"#, "is not an RFC 3339 UTC timestamp"),
        (r#"{"id":1,"extra":true}"#, r#"unknown field "extra" (the structured_json schema has: id, user"#),
    ];
    for (line, want) in cases {
        let (_, bad) = errors(PayloadType::StructuredJson, line.as_bytes());
        assert!(bad.len() == 1 && bad[0].to_string().contains(want), "{line}: {bad:?}");
        assert_eq!(bad[0].line, 1);
    }
    // Missing and null fields are NULL, and left out of the encoding.
    let (ok, _) = errors(PayloadType::StructuredJson, br#"{"id":5,"user":null}"#);
    let schema = Format::StructuredJson { token: false }.schema();
    assert_eq!(schema.encode(&ok[0].row).unwrap(), br#"{"id":5}"#);
    let (ok, _) = errors(PayloadType::StructuredJson, b"{      }\n");
    assert_eq!(schema.encode(&ok[0].row).unwrap(), b"{}", "a record too small for any line is an empty object");
}

#[test]
fn invalid_utf8_in_text_names_file_and_line() {
    let input = b"first paragraph.\n\nsecond\nline two \xff\xfe here\n\nthird.".to_vec();
    let (ok, bad) = errors(PayloadType::TextDocument, &input);
    assert_eq!(ok.len(), 2);
    assert_eq!((ok[0].line, ok[1].line), (1, 6));
    assert_eq!((ok[0].ordinal, ok[1].ordinal), (0, 2));
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].line, 4, "the bad byte is on line 4");
    assert_eq!(
        bad[0].to_string(),
        "records/r00000003.ndjson line 4: invalid UTF-8 at byte 10 of the line (paragraph 2 of the file)"
    );
}

#[test]
fn bad_uuid_lines_and_documents_are_errors() {
    let input =
        b"0f8fad5b-d9cb-469f-a165-70867728950e,12\nnot-a-uuid,3\n0f8fad5b-d9cb-469f-a165-70867728950e,x\nnocomma\n";
    let (ok, bad) = errors(PayloadType::UuidKeys, input);
    assert_eq!(ok.len(), 1);
    let msgs: Vec<String> = bad.iter().map(|e| e.to_string()).collect();
    assert!(msgs[0].contains("line 2: \"not-a-uuid\" is not a UUID"), "{msgs:?}");
    assert!(msgs[1].contains("line 3: value \"x\" is not an integer"), "{msgs:?}");
    assert!(msgs[2].contains("line 4: expected `<uuid>,<value>`"), "{msgs:?}");

    let (ok, bad) = errors(PayloadType::JsonbDocuments, b"{\"a\": 1,\n \"b\": }");
    assert!(ok.is_empty());
    assert!(bad[0].to_string().contains("line 2: malformed JSON document"), "{}", bad[0]);
}

#[test]
fn types_without_record_structure_fall_back_to_blob_with_a_reason() {
    for p in PayloadType::ALL {
        assert!(matches!(support(p.name()), Support::Native(_)), "{p}");
        let f = format_of(p);
        assert_eq!(f.schema().name, p.name());
    }
    for name in ["nasa_image", "blender_video", "github_events", "numeric_dataset", "something_else"] {
        match support(name) {
            Support::Blob(why) => assert!(why.contains(name) && why.contains("blob"), "{why}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!("skip".parse::<OnParseError>().unwrap(), OnParseError::Skip);
    assert!("ignore".parse::<OnParseError>().unwrap_err().to_string().contains("fail, skip"));
}

#[test]
fn structured_json_has_a_token_column_only_when_records_can_be_tiny() {
    let cols = |size| format_for(PayloadType::StructuredJson, size).schema().columns.len();
    assert_eq!((cols(64), cols(511), cols(512), cols(524_288)), (10, 10, 9, 9));
    let spec = crate::DatasetSpec {
        payload: PayloadType::StructuredJson,
        grade: "U0".parse().unwrap(),
        records: 1,
        record_size: "64..1MiB".parse().unwrap(),
        seed: 7,
        real_world: None,
    };
    assert_eq!(for_dataset(&spec), Support::Native(Format::StructuredJson { token: true }));
    // With the column, ordinary lines encode exactly as without it (NULL is left out).
    let data = file(PayloadType::StructuredJson, 3, 4096);
    let with: Vec<Vec<u8>> = {
        let f = Format::StructuredJson { token: true };
        f.parse("f", &data[..]).map(|r| f.schema().encode(&r.unwrap().row).unwrap()).collect()
    };
    assert_eq!(with, encoded(PayloadType::StructuredJson, &data));
}
