//! The full traces shipped gzipped in `workloads/` read like the originals: every request is
//! there, and their first rows are the plain samples beside them.

mod common;

use servesim::scenario::schema::TraceFormat;
use servesim::workload::read_trace;

#[test]
fn gzipped_full_traces_hold_every_request_and_start_with_the_samples() {
    let workloads = common::project_root().join("workloads");
    for (format, full, sample, requests) in [
        (TraceFormat::Azure, "AzureLLMInferenceTrace_conv.csv.gz", "azure_conv_sample.csv", 19_366),
        (TraceFormat::Azure, "AzureLLMInferenceTrace_code.csv.gz", "azure_code_sample.csv", 8_819),
        (TraceFormat::Mooncake, "mooncake_conversation_trace.jsonl.gz", "mooncake_conversation_sample.jsonl", 12_031),
    ] {
        let rows = read_trace(format, &workloads.join(full), None).unwrap();
        assert_eq!(rows.len(), requests, "{full}");
        let sample = read_trace(format, &workloads.join(sample), None).unwrap();
        assert_eq!(rows[..sample.len()], sample[..], "{full} does not start with {sample:?}");
    }
    let mooncake =
        read_trace(TraceFormat::Mooncake, &workloads.join("mooncake_conversation_trace.jsonl.gz"), None).unwrap();
    assert!(mooncake.iter().all(|r| !r.prefix_hashes.is_empty()), "every Mooncake request carries its prefix hashes");
}
