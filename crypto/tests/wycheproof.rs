//! Wycheproof Ed25519 verification vectors (C2SP/wycheproof, Apache-2.0; see
//! `data/LICENSE-wycheproof`) through the one verify function both sides use.

use conclave_crypto::verify_signature;
use serde_json::Value;

#[test]
fn every_wycheproof_ed25519_case_gets_the_expected_verdict() {
    let text = include_str!("data/wycheproof_ed25519_test.json");
    let suite: Value = serde_json::from_str(text).expect("vector file is JSON");
    let mut checked = 0;
    let mut failures = Vec::new();
    for group in suite["testGroups"].as_array().expect("testGroups") {
        let public_key =
            hex::decode(group["publicKey"]["pk"].as_str().expect("pk")).expect("hex pk");
        for case in group["tests"].as_array().expect("tests") {
            let message = hex::decode(case["msg"].as_str().expect("msg")).expect("hex msg");
            let signature = hex::decode(case["sig"].as_str().expect("sig")).expect("hex sig");
            let verdict = verify_signature(&public_key, &message, &signature).is_ok();
            // "acceptable" cases may go either way; we take the strict side and
            // record them only so the count below covers every case.
            let expected = match case["result"].as_str().expect("result") {
                "valid" => Some(true),
                "invalid" => Some(false),
                _ => None,
            };
            if expected.is_some_and(|expected| verdict != expected) {
                failures.push(format!("tcId {}: {}", case["tcId"], case["comment"]));
            }
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        suite["numberOfTests"].as_u64().expect("count") as usize
    );
    assert!(failures.is_empty(), "wrong verdicts: {failures:#?}");
}
