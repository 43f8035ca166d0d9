//! AIConfigurator's measured operator tables as servesim's cost source: how well the bundled
//! grids predict the measured rows held out of them (against the roofline on the same rows),
//! that the bundled files regenerate byte for byte from the published package when it is
//! present, what the lookup covers and declines, and hostile tables.
//!
//! The held-out rows are an evenly spread sample (at most 240 per table) of every row the
//! conversion left out of the grids, written by `servesim calibrate --aiconfigurator
//! --held-out` to `tests/data/aiconfigurator/`; which rows are held out is described in
//! `sim/calibration/aiconfigurator/convert.rs` (odd m and non-power-of-two n, k for GEMMs;
//! non-power-of-two head ratios, widths and token counts for attention; every other message
//! size for all-reduce).

use servesim::calibration::aiconfigurator::{
    convert, held_out_errors, read_held_out, write_held_out, ConvertOptions, ErrorSummary, MeasuredTimes, ParquetTable,
};
use servesim::commands::MEASURED_HEADER;
use servesim::cost::{MeasuredContext, OperatorTimes, RooflineCostModel};
use servesim::hardware::{bundled_measured, bundled_measured_by_name, bundled_measured_names, Catalog, Dtype};
use servesim::input::YamlSource;
use servesim::model::{AttentionHeads, BatchShape, ModelSpec, OpKind, OpShape, Operator, Precision, WeightFormat};
use servesim::scenario::ParallelComm;
use servesim::topology::{CollectiveCost, Fabric};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A one-layer model: the roofline prices single operators, which do not depend on it.
fn tiny_model() -> ModelSpec {
    let config = r#"{"model_type":"llama","hidden_size":128,"num_hidden_layers":1,"num_attention_heads":1,"num_key_value_heads":1,"intermediate_size":128,"vocab_size":128,"hidden_act":"silu"}"#;
    ModelSpec::from_hf_config("tiny", "tiny", config).unwrap()
}

/// The node each bundled device's measurements stand for (its all-reduce roofline).
fn node_of(device: &str) -> &'static str {
    match device {
        "h100-sxm" => "dgx-h100",
        "h200" => "hgx-h200",
        "a100-sxm-80gb" => "dgx-a100",
        "b200" => "dgx-b200",
        "l40s" => "l40s-server",
        other => panic!("no node for {other}"),
    }
}

fn print(name: &str, group: &str, measured: &ErrorSummary, roofline: &ErrorSummary) {
    eprintln!(
        "{name:<34} {group:<22} rows {:>4}  measured median {:>5.1}% p90 {:>6.1}%   roofline median {:>6.1}% p90 {:>7.1}%",
        measured.rows,
        measured.median * 100.0,
        measured.p90 * 100.0,
        roofline.median * 100.0,
        roofline.p90 * 100.0
    );
}

#[test]
fn bundled_grids_predict_held_out_rows_better_than_the_roofline() {
    let catalog = Catalog::bundled().unwrap();
    let model = tiny_model();
    let names: Vec<&str> = bundled_measured_names().collect();
    assert_eq!(names.len(), 15, "5 devices x trtllm, vllm, sglang: {names:?}");
    let mut checked = 0;
    for name in names {
        let times = bundled_measured_by_name(name).unwrap().unwrap();
        let device_name = times.provenance().device.clone();
        let device = &catalog.devices[&device_name];
        let rows = read_held_out(&root().join(format!("tests/data/aiconfigurator/{name}.csv.gz"))).unwrap();
        let node = &catalog.nodes[node_of(&device_name)];
        let fabric = Fabric::build(&[(node.clone(), 1)], &catalog.links);
        let comms: BTreeMap<u64, CollectiveCost> = [1u64, 2, 4, 8]
            .into_iter()
            .map(|tp| {
                let members: Vec<usize> = (0..tp as usize).collect();
                (tp, CollectiveCost::nominal(fabric.group_comm(&members).unwrap().all_reduce))
            })
            .collect();
        let measured = held_out_errors(&rows, &|op, context| times.seconds(op, context));
        let roofline = held_out_errors(&rows, &|op: &Operator, context: &MeasuredContext| {
            let tp = context.tensor_parallel;
            let tp_all_reduce = comms.get(&tp)?.clone();
            let comm = ParallelComm { tensor_parallel: 1, pipeline_parallel: 1, tp_all_reduce, ..Default::default() };
            Some(RooflineCostModel::new(&model, device, context.precision, &comm).roofline_seconds(op))
        });
        for (group, m) in &measured {
            let r = &roofline[group];
            print(name, group, m, r);
            assert_eq!(m.declined, 0, "{name} {group}: the grids must cover their own table's shapes");
            assert!(m.rows > 0, "{name} {group}");
            assert!(m.median < 0.15, "{name} {group}: held-out median error {:.1}%", m.median * 100.0);
            assert!(m.p90 < 1.0, "{name} {group}: held-out p90 error {:.1}%", m.p90 * 100.0);
            // The measured tables are the point: they must beat the roofline on its own turf.
            assert!(m.median < r.median, "{name} {group}: measured {:.3} vs roofline {:.3}", m.median, r.median);
            checked += m.rows;
        }
        // The errors the file records (all held-out rows) are those of the same grids.
        for (group, recorded) in &times.provenance().held_out_error {
            let sample = &measured[group];
            assert!(recorded.rows >= sample.rows, "{name} {group}");
            assert!(recorded.median < 0.15, "{name} {group}: recorded median {}", recorded.median);
        }
    }
    assert!(checked > 10_000, "{checked} held-out rows checked");
}

/// The package data, when present: `SERVESIM_AICONFIGURATOR_DATA` or the default unpack path.
fn package_data() -> Option<PathBuf> {
    let path = std::env::var_os("SERVESIM_AICONFIGURATOR_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/aic/x/aiconfigurator_core/systems/data"));
    path.is_dir().then_some(path)
}

#[test]
fn a_bundled_calibration_regenerates_byte_for_byte_from_the_package() {
    let Some(data) = package_data() else {
        eprintln!(
            "skipped: AIConfigurator's data is not here (set SERVESIM_AICONFIGURATOR_DATA to aiconfigurator_core/systems/data of aiconfigurator-core 0.12.0)"
        );
        return;
    };
    let name = "h100-sxm_trtllm_1.3.0rc20";
    let conversion = convert(&ConvertOptions {
        data,
        device: "h100-sxm".into(),
        framework: "trtllm".into(),
        version: Some("1.3.0rc20".into()),
        out_name: format!("{name}.yaml"),
    })
    .unwrap();
    let text = format!("{MEASURED_HEADER}{}", servesim::input::to_yaml(&conversion.file).unwrap());
    let bundled =
        std::fs::read_to_string(root().join(format!("hardware-profiles/calibrations/aiconfigurator/{name}.yaml")))
            .unwrap();
    assert!(
        text == bundled,
        "the regenerated {name}.yaml differs from the bundled one; run the command in its generated_by"
    );
    let dir = tempfile::tempdir().unwrap();
    let sample = dir.path().join("sample.csv.gz");
    write_held_out(&sample, &conversion.held_out_sample).unwrap();
    let bundled_sample = std::fs::read(root().join(format!("tests/data/aiconfigurator/{name}.csv.gz"))).unwrap();
    assert!(std::fs::read(&sample).unwrap() == bundled_sample, "the held-out sample differs");
}

fn h100_trtllm() -> Arc<MeasuredTimes> {
    bundled_measured("h100-sxm", "trtllm").unwrap().unwrap()
}

fn context(weights: WeightFormat, kv: Dtype, tp: u64, single_node: bool) -> MeasuredContext {
    MeasuredContext {
        precision: Precision::resolve(weights, Dtype::Bf16, kv, &|d| d != Dtype::Fp4),
        tensor_parallel: tp,
        single_node,
    }
}

fn gemm(m: u64, n: u64, k: u64) -> Operator {
    Operator { kind: OpKind::Gemm, shape: OpShape::Gemm { m, n, k }, repeat: 1, ..Operator::default() }
}

#[test]
fn the_catalog_maps_engines_and_finds_the_latest_bundled_version() {
    let times = h100_trtllm();
    assert_eq!(times.source(), "aiconfigurator h100_sxm trtllm 1.3.0rc20");
    let vllm = bundled_measured("h100-sxm", "vllm-v1").unwrap().unwrap();
    assert_eq!(vllm.provenance().framework, "vllm");
    assert!(bundled_measured("h100-sxm", "eager-pytorch").unwrap().is_none());
    assert!(bundled_measured("mi300x", "vllm-v1").unwrap().is_none());
    let message = bundled_measured("h100-sxm", "tensorrt").unwrap_err().to_string();
    assert!(message.contains("unknown engine") && message.contains("vllm-v1"), "{message}");
    // A file by path, and a missing one.
    let path = root().join("hardware-profiles/calibrations/aiconfigurator/l40s_vllm_0.24.0.yaml");
    assert_eq!(servesim::hardware::measured_file(&path).unwrap().provenance().device, "l40s");
    let message = servesim::hardware::measured_file(Path::new("no/such.yaml")).unwrap_err().to_string();
    assert!(message.contains("no/such.yaml"), "{message}");
}

#[test]
fn lookups_cover_measured_operators_and_decline_the_rest() {
    let times = h100_trtllm();
    let bf16 = context(WeightFormat::Bf16, Dtype::Bf16, 1, true);
    let fp8 = context(WeightFormat::Fp8, Dtype::Fp8, 1, true);
    // A GEMM on the grid is its measurement; a bigger one grows with its work.
    let small = times.seconds(&gemm(4096, 4096, 4096), &bf16).unwrap();
    let double_m = times.seconds(&gemm(8192, 4096, 4096), &bf16).unwrap();
    assert!(small > 50e-6 && small < 2e-3, "{small}");
    assert!((1.5..2.5).contains(&(double_m / small)), "{}", double_m / small);
    let beyond = times.seconds(&gemm(131_072, 4096, 4096), &bf16).unwrap();
    let edge = times.seconds(&gemm(32_768, 4096, 4096), &bf16).unwrap();
    assert!((beyond / edge - 4.0).abs() < 1e-9, "past the grid the latency grows with m");
    // FP8 is faster than 16-bit for a large GEMM; the LM head stays 16-bit.
    let fp8_s = times.seconds(&gemm(4096, 4096, 4096), &fp8).unwrap();
    assert!(fp8_s < small, "{fp8_s} vs {small}");
    let mut head = gemm(4096, 4096, 4096);
    head.unquantized = true;
    assert_eq!(times.seconds(&head, &fp8), Some(small));
    // MoE experts have no per-GEMM shape; MXFP4 and INT4 on a file without them decline.
    assert_eq!(times.seconds(&Operator { kind: OpKind::Gemm, ..Operator::default() }, &bf16), None);
    assert_eq!(times.seconds(&gemm(64, 4096, 4096), &context(WeightFormat::Mxfp4, Dtype::Bf16, 1, true)), None);
    assert_eq!(times.seconds(&gemm(64, 4096, 4096), &context(WeightFormat::Int4Awq, Dtype::Bf16, 1, true)), None);

    // Prefill: a chunk after a cached prefix costs the part of the causal square it adds.
    let heads = AttentionHeads { query: 32, kv: 8, head_dim: 128, latent: false };
    let prefill = |q: f64, kv: f64| {
        let shape = OpShape::PrefillAttention { sequences: 2, query_tokens: q, kv_tokens: kv, heads };
        times.seconds(&Operator { kind: OpKind::Attention, shape, ..Operator::default() }, &bf16).unwrap()
    };
    let whole = prefill(4096.0, 4096.0);
    let second_half = prefill(2048.0, 4096.0);
    assert!((second_half / whole - 0.75).abs() < 1e-9, "{}", second_half / whole);
    assert!(prefill(2048.0, 2048.0) < second_half);
    // Decode grows with the cache; fp8 KV reads half the bytes.
    let decode = |kv_tokens: f64, context: &MeasuredContext, heads: AttentionHeads| {
        let shape = OpShape::DecodeAttention { sequences: 64, kv_tokens, heads };
        times.seconds(&Operator { kind: OpKind::Attention, shape, ..Operator::default() }, context)
    };
    let short = decode(1024.0, &bf16, heads).unwrap();
    let long = decode(16_384.0, &bf16, heads).unwrap();
    assert!(long > 4.0 * short, "{short} {long}");
    assert!(decode(16_384.0, &fp8, heads).unwrap() < long);
    // MLA's latent attention and unmeasured head dimensions decline.
    assert_eq!(decode(1024.0, &bf16, AttentionHeads { latent: true, ..heads }), None);
    assert_eq!(decode(1024.0, &bf16, AttentionHeads { head_dim: 80, ..heads }), None);

    // All-reduce: measured inside one node for 2, 4 and 8 devices only.
    let all_reduce = |tp, single_node| {
        let shape = OpShape::AllReduce { bytes: 8.0 * 1024.0 * 1024.0 };
        let op = Operator { kind: OpKind::AllReduce, shape, bytes: 8.0 * 1024.0 * 1024.0, ..Operator::default() };
        times.seconds(&op, &context(WeightFormat::Bf16, Dtype::Bf16, tp, single_node))
    };
    let eight = all_reduce(8, true).unwrap();
    assert!(eight > 10e-6 && eight < 1e-3, "{eight}");
    assert_eq!(all_reduce(8, false), None);
    assert_eq!(all_reduce(3, true), None);
}

#[test]
fn a_cost_model_with_measured_times_prices_a_real_model() {
    let catalog = Catalog::bundled().unwrap();
    let device = &catalog.devices["h100-sxm"];
    let text = std::fs::read_to_string(root().join("models/llama-3.1-8b/config.json")).unwrap();
    let model = ModelSpec::from_hf_config("llama-3.1-8b", "config.json", &text).unwrap();
    let comm = ParallelComm { tensor_parallel: 1, pipeline_parallel: 1, ..Default::default() };
    let precision = Precision::sixteen_bit(Dtype::Bf16);
    let roofline = RooflineCostModel::new(&model, device, precision, &comm);
    let measured = roofline.clone().with_measured(h100_trtllm());
    let mut batch = BatchShape::default();
    batch.add_prefill_chunk(0, 2048, true);
    for _ in 0..32 {
        batch.add_decode(1500);
    }
    let times = h100_trtllm();
    let context = MeasuredContext { precision, tensor_parallel: 1, single_node: true };
    let mut covered = 0;
    for op in measured.operators(&batch) {
        let m = measured.operator_seconds(&op);
        let r = roofline.operator_seconds(&op);
        if let Some(table) = times.seconds(&op, &context) {
            covered += 1;
            assert_eq!(m, table, "{}", op.name);
            // Same physics, within a factor of 3 of the roofline for a mainstream model.
            assert!(m / r > 1.0 / 3.0 && m / r < 3.0, "{}: measured {m} roofline {r}", op.name);
        } else {
            assert_eq!(m, r, "{}: declined operators keep the roofline's price", op.name);
        }
    }
    // Every GEMM and both attentions of a dense model are measured.
    assert_eq!(
        covered, 7,
        "attn_pre_proj, attn_prefill, attn_decode, attn_post_proj, mlp_up_proj, mlp_down_proj, lm_head"
    );
}

/// Writes a Parquet file of `columns` (name, values) for hostile-input tests.
fn write_parquet(path: &Path, columns: &[(&str, Values)]) {
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let fields: Vec<String> = columns
        .iter()
        .map(|(name, values)| match values {
            Values::Int(_) => format!("required int64 {name};"),
            Values::Float(_) => format!("required double {name};"),
            Values::Str(_) => format!("required binary {name} (UTF8);"),
        })
        .collect();
    let schema = parquet::schema::parser::parse_message_type(&format!("message t {{ {} }}", fields.join(" "))).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer =
        SerializedFileWriter::new(file, Arc::new(schema), Arc::new(WriterProperties::builder().build())).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut index = 0;
    while let Some(mut column) = group.next_column().unwrap() {
        match &columns[index].1 {
            Values::Int(v) => {
                column.typed::<Int64Type>().write_batch(v, None, None).unwrap();
            }
            Values::Float(v) => {
                column.typed::<DoubleType>().write_batch(v, None, None).unwrap();
            }
            Values::Str(v) => {
                let bytes: Vec<ByteArray> = v.iter().map(|s| ByteArray::from(s.as_str())).collect();
                column.typed::<ByteArrayType>().write_batch(&bytes, None, None).unwrap();
            }
        }
        column.close().unwrap();
        index += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
}

enum Values {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Str(Vec<String>),
}

fn strings(values: &[&str]) -> Values {
    Values::Str(values.iter().map(|s| s.to_string()).collect())
}

/// A system folder whose GEMM table is `columns`, converted.
fn convert_gemm(columns: &[(&str, Values)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let gemm = dir.path().join("h100_sxm/gemm/trtllm/1.0.0");
    std::fs::create_dir_all(&gemm).unwrap();
    std::fs::create_dir_all(dir.path().join("h100_sxm/attention/trtllm/1.0.0")).unwrap();
    write_parquet(&gemm.join("gemm_perf.parquet"), columns);
    let options = ConvertOptions {
        data: dir.path().to_path_buf(),
        device: "h100-sxm".into(),
        framework: "trtllm".into(),
        version: None,
        out_name: "out.yaml".into(),
    };
    convert(&options).unwrap_err().to_string()
}

#[test]
fn hostile_tables_give_errors_naming_the_file_and_column() {
    let good = || {
        vec![
            ("gemm_dtype", strings(&["bfloat16", "bfloat16"])),
            ("m", Values::Int(vec![1, 2])),
            ("n", Values::Int(vec![64, 64])),
            ("k", Values::Int(vec![64, 64])),
            ("latency", Values::Float(vec![0.01, 0.011])),
        ]
    };
    let mut missing = good();
    missing.remove(3);
    let message = convert_gemm(&missing);
    assert!(
        message.contains("gemm_perf.parquet") && message.contains("`k`") && message.contains("column missing"),
        "{message}"
    );

    let mut wrong_type = good();
    wrong_type[1] = ("m", strings(&["1", "2"]));
    let message = convert_gemm(&wrong_type);
    assert!(message.contains("`m`") && message.contains("expected a column of integers, found strings"), "{message}");

    let mut nan = good();
    nan[4] = ("latency", Values::Float(vec![0.01, f64::NAN]));
    let message = convert_gemm(&nan);
    assert!(message.contains("`latency`") && message.contains("row 2") && message.contains("NaN"), "{message}");

    let mut unknown = good();
    unknown[0] = ("gemm_dtype", strings(&["bfloat16", "fp6"]));
    let message = convert_gemm(&unknown);
    assert!(message.contains("`gemm_dtype`") && message.contains("unknown dtype \"fp6\""), "{message}");

    let empty: Vec<(&str, Values)> = good()
        .into_iter()
        .map(|(name, values)| {
            let values = match values {
                Values::Int(_) => Values::Int(vec![]),
                Values::Float(_) => Values::Float(vec![]),
                Values::Str(_) => Values::Str(vec![]),
            };
            (name, values)
        })
        .collect();
    let message = convert_gemm(&empty);
    assert!(message.contains("gemm_perf.parquet") && message.contains("no rows"), "{message}");

    // Not a Parquet file at all.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gemm_perf.parquet");
    std::fs::write(&path, "framework,version\n").unwrap();
    let message = ParquetTable::read(&path).unwrap_err().to_string();
    assert!(message.contains("gemm_perf.parquet") && message.contains("not a readable Parquet file"), "{message}");
}

#[test]
fn hostile_calibration_files_name_the_field() {
    let path = root().join("hardware-profiles/calibrations/aiconfigurator/a100-sxm-80gb_trtllm_1.0.0.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let parse = |text: String| MeasuredTimes::from_source(&YamlSource::from_text("bad.yaml", PathBuf::new(), text));
    assert!(parse(text.clone()).is_ok());
    // A latency line one value short.
    let first = text.find("latency_us:\n    - ").unwrap() + "latency_us:\n    - ".len();
    let end = first + text[first..].find('\n').unwrap();
    let line = &text[first..end];
    let shorter = line.rsplit_once(' ').unwrap().0;
    let message = parse(format!("{}{}{}", &text[..first], shorter, &text[end..])).unwrap_err().to_string();
    assert!(message.contains("bad.yaml") && message.contains("gemm.bfloat16.latency_us"), "{message}");
    // A latency that is not a number.
    let message = parse(format!("{}{} x{}", &text[..first], shorter, &text[end..])).unwrap_err().to_string();
    assert!(message.contains("\"x\" is not a number"), "{message}");
    // An unknown GEMM dtype.
    let message = parse(text.replacen("\n  bfloat16:\n", "\n  fp6:\n", 1)).unwrap_err().to_string();
    assert!(message.contains("gemm.fp6") && message.contains("unknown GEMM dtype"), "{message}");
}
