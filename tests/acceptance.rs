//! Speculative-decoding acceptance against closed forms, over 100,000 draws each.
//!
//! - Bernoulli: tokens per verification step = (1 − α^(k+1)) / (1 − α).
//! - Per-position (Medusa 7B's five heads, from `tests/data/specdec/medusa_acc.csv`):
//!   1 + Σ_i Π_{j≤i} r_j.
//! - Empirical and Beta-per-request: the sample mean is `expected_accepted`.
//! - A width-2 tree accepts more than a chain; draws do not depend on batching order; `check`
//!   names each bad input.
//!
//! Run with `--nocapture` to see the figures.

use servesim::scenario::medusa_position_rates;
use servesim::serving::{Acceptance, AcceptanceModel};
use std::path::PathBuf;

const DRAWS: u64 = 100_000;

fn medusa_csv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/specdec/medusa_acc.csv")
}

/// Mean accepted drafted tokens over `DRAWS` verifications of `drafted` tokens, spread over
/// 1,000 requests of 100 steps each (so per-request streams are exercised).
fn mean_accepted(acceptance: &mut Acceptance, drafted: u32) -> f64 {
    mean_accepted_over(acceptance, drafted, 1_000, DRAWS / 1_000)
}

/// Mean accepted drafted tokens of `requests` requests verifying `drafted` tokens `steps`
/// times each; every request's stream is forgotten when it finishes.
fn mean_accepted_over(acceptance: &mut Acceptance, drafted: u32, requests: u64, steps: u64) -> f64 {
    let mut total = 0u64;
    for request in 0..requests {
        for _ in 0..steps {
            total += u64::from(acceptance.draw(request, drafted, 1));
        }
        acceptance.finish(request);
    }
    assert_eq!(acceptance.live_streams(), 0);
    total as f64 / (requests * steps) as f64
}

fn assert_within_1_percent(what: &str, measured: f64, expected: f64) {
    let error = (measured - expected).abs() / expected;
    println!(
        "{what}: measured {measured:.4}, expected {expected:.4} ({:+.2}%)",
        100.0 * (measured - expected) / expected
    );
    assert!(error < 0.01, "{what}: measured {measured} is not within 1% of {expected}");
}

#[test]
fn bernoulli_tokens_per_step_match_the_geometric_closed_form() {
    for rate in [0.6, 0.8] {
        for k in [2u32, 4, 8] {
            let mut acceptance = Acceptance::new(AcceptanceModel::Bernoulli { rate }, 1, 0.0, 11);
            let measured = 1.0 + mean_accepted(&mut acceptance, k);
            let expected = (1.0 - rate.powi(k as i32 + 1)) / (1.0 - rate);
            assert!((1.0 + acceptance.expected_accepted(k, 1) - expected).abs() < 1e-12);
            assert_within_1_percent(&format!("Bernoulli α = {rate}, k = {k}: tokens per step"), measured, expected);
        }
    }
}

#[test]
fn medusa_heads_give_per_position_rates_matching_the_closed_form() {
    let rates = medusa_position_rates(&medusa_csv(), "7b", 5).unwrap();
    println!("Medusa 7B conditional rates (nested-heads shortcut): {rates:.4?}");
    assert_eq!(rates.len(), 5);
    // Head 0's top-1 accuracy of the 7b run, as exported.
    assert!((rates[0] - 0.560_387_670_993_804_9).abs() < 1e-12);
    assert!(rates.iter().all(|r| (0.0..=1.0).contains(r)));
    let model = AcceptanceModel::PerPosition { rates: rates.clone() };
    model.check(5).unwrap();
    let mut acceptance = Acceptance::new(model, 1, 0.0, 12);
    let measured = 1.0 + mean_accepted(&mut acceptance, 5);
    let mut run = 1.0;
    let expected = 1.0
        + rates
            .iter()
            .map(|r| {
                run *= r;
                run
            })
            .sum::<f64>();
    assert!((1.0 + acceptance.expected_accepted(5, 1) - expected).abs() < 1e-12);
    assert_within_1_percent("Medusa 7B, k = 5: tokens per step", measured, expected);
}

#[test]
fn empirical_and_beta_sample_means_match_expected_accepted() {
    let cases = [
        (
            "Empirical [0.3, 0.25, 0.2, 0.15, 0.1], k = 4",
            AcceptanceModel::Empirical { probabilities: vec![0.3, 0.25, 0.2, 0.15, 0.1] },
            4,
        ),
        (
            "Empirical [0.1, 0.2, 0.3, 0.4] capped at k = 2",
            AcceptanceModel::Empirical { probabilities: vec![0.1, 0.2, 0.3, 0.4] },
            2,
        ),
        ("Beta(8, 2) per request, k = 4", AcceptanceModel::BetaPerRequest { alpha: 8.0, beta: 2.0 }, 4),
        ("Beta(4, 1) per request, k = 6", AcceptanceModel::BetaPerRequest { alpha: 4.0, beta: 1.0 }, 6),
    ];
    for (what, model, k) in cases {
        model.check(k).unwrap();
        let mut acceptance = Acceptance::new(model, 1, 0.0, 13);
        // A Beta request's rate is drawn once, so the mean's noise falls with the number of
        // requests, not of steps: one step each for 50,000 requests (Beta shapes with a
        // high mean rate keep that noise near 0.3%).
        let measured = match acceptance.model() {
            AcceptanceModel::BetaPerRequest { .. } => mean_accepted_over(&mut acceptance, k, DRAWS / 2, 1),
            _ => mean_accepted(&mut acceptance, k),
        };
        assert_within_1_percent(&format!("{what}: accepted per step"), measured, acceptance.expected_accepted(k, 1));
    }
}

#[test]
fn a_wider_tree_accepts_more() {
    for model in [
        AcceptanceModel::Bernoulli { rate: 0.6 },
        AcceptanceModel::PerPosition { rates: vec![0.7, 0.5, 0.4, 0.3] },
        AcceptanceModel::Empirical { probabilities: vec![0.4, 0.3, 0.2, 0.1] },
        AcceptanceModel::BetaPerRequest { alpha: 3.0, beta: 2.0 },
    ] {
        let chain = Acceptance::new(model.clone(), 1, 0.0, 14).expected_accepted(4, 1);
        let tree = Acceptance::new(model.clone(), 2, 0.0, 14);
        let wide = tree.expected_accepted(4, 1);
        println!("{model:?}: chain {chain:.4}, width 2 {wide:.4} accepted of 4");
        assert!(wide > chain, "{model:?}: width 2 gives {wide}, a chain {chain}");
        assert_eq!(tree.verified_tokens(4), 8);
    }
    // Bernoulli closed form: a width-2 position accepts with 1 − 0.4² = 0.84.
    let tree = Acceptance::new(AcceptanceModel::Bernoulli { rate: 0.6 }, 2, 0.0, 14);
    let expected: f64 = (1..=4).map(|i| 0.84f64.powi(i)).sum();
    assert!((tree.expected_accepted(4, 1) - expected).abs() < 1e-12);
}

#[test]
fn a_requests_draws_do_not_depend_on_other_requests_in_its_batches() {
    let model = AcceptanceModel::BetaPerRequest { alpha: 2.0, beta: 2.0 };
    let mut alone = Acceptance::new(model.clone(), 1, 0.0, 15);
    let a_alone: Vec<u32> = (0..200).map(|_| alone.draw(7, 6, 1)).collect();
    let mut shared = Acceptance::new(model, 1, 0.0, 15);
    let mut a_shared = Vec::new();
    for step in 0..200u64 {
        // B is drawn before, after, or both, and a third request comes and goes.
        if step % 3 == 0 {
            shared.draw(8, 6, 1);
        }
        a_shared.push(shared.draw(7, 6, 1));
        if step % 2 == 0 {
            shared.draw(8, 6, 1);
            shared.draw(100 + step, 6, 1);
            shared.finish(100 + step);
        }
    }
    assert_eq!(a_alone, a_shared);
    // Another seed gives other draws.
    let mut other = Acceptance::new(AcceptanceModel::BetaPerRequest { alpha: 2.0, beta: 2.0 }, 1, 0.0, 16);
    let a_other: Vec<u32> = (0..200).map(|_| other.draw(7, 6, 1)).collect();
    assert_ne!(a_alone, a_other);
}

#[test]
fn check_names_each_bad_input() {
    let bad = |model: AcceptanceModel, k: u32, says: &str| {
        let message = model.check(k).expect_err(&format!("{model:?} with k = {k} should be rejected"));
        assert!(message.contains(says), "{model:?}: `{message}` does not say `{says}`");
    };
    bad(AcceptanceModel::Bernoulli { rate: 1.5 }, 4, "[0, 1]");
    bad(AcceptanceModel::Bernoulli { rate: -0.1 }, 4, "[0, 1]");
    bad(AcceptanceModel::Bernoulli { rate: f64::NAN }, 4, "NaN");
    bad(AcceptanceModel::PerPosition { rates: vec![0.5; 5] }, 4, "a per-position list of 5 rates is longer than k = 4");
    bad(AcceptanceModel::PerPosition { rates: vec![0.5, f64::NAN] }, 4, "rate 1");
    bad(AcceptanceModel::Empirical { probabilities: vec![] }, 4, "empty");
    bad(AcceptanceModel::Empirical { probabilities: vec![0.5, -0.1, 0.6] }, 4, "≥ 0");
    bad(AcceptanceModel::Empirical { probabilities: vec![0.5, f64::NAN, 0.5] }, 4, "NaN");
    bad(AcceptanceModel::Empirical { probabilities: vec![0.5, 0.4] }, 4, "sum to 0.9");
    bad(AcceptanceModel::BetaPerRequest { alpha: 0.0, beta: 1.0 }, 4, "> 0");
    bad(AcceptanceModel::BetaPerRequest { alpha: 1.0, beta: f64::INFINITY }, 4, "finite");
    bad(AcceptanceModel::BetaPerRequest { alpha: f64::NAN, beta: 1.0 }, 4, "finite");
    AcceptanceModel::Bernoulli { rate: 1.0 }.check(4).unwrap();
    AcceptanceModel::PerPosition { rates: vec![0.5; 4] }.check(4).unwrap();
    AcceptanceModel::Empirical { probabilities: vec![0.1; 10] }.check(4).unwrap();
}

#[test]
fn medusa_errors_name_the_file_and_the_cell() {
    let missing_run = medusa_position_rates(&medusa_csv(), "70b", 5).unwrap_err().to_string();
    assert!(missing_run.contains("medusa_acc.csv") && missing_run.contains("33b, 13b, 7b"), "{missing_run}");
    let too_many_heads = medusa_position_rates(&medusa_csv(), "7b", 6).unwrap_err().to_string();
    assert!(
        too_many_heads.contains("medusa_acc.csv:1") && too_many_heads.contains("train/medusa5_top1"),
        "{too_many_heads}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "Name,train/medusa0_top1,train/medusa1_top1\n13b,0.6,0.3\n7b,0.5,high\n").unwrap();
    let message = medusa_position_rates(&bad, "7b", 2).unwrap_err().to_string();
    assert!(
        message.contains("bad.csv:3") && message.contains("train/medusa1_top1") && message.contains("`high`"),
        "{message}"
    );
    let absent = medusa_position_rates(&dir.path().join("absent.csv"), "7b", 2).unwrap_err().to_string();
    assert!(absent.contains("absent.csv") && absent.contains("not found"), "{absent}");
}
