//! The IAM policy that docs/live.md shows grants exactly the actions the code calls.

use std::collections::BTreeSet;

#[test]
fn the_documented_policy_lists_exactly_the_actions_called() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/live.md"))
        .unwrap();
    let at = page
        .find("IAM policy")
        .expect("docs/live.md has an IAM policy");
    let start = at + page[at..].find("```json\n").expect("a json block") + 8;
    let end = start + page[start..].find("```").unwrap();
    let policy: serde_json::Value = serde_json::from_str(&page[start..end]).unwrap();
    let mut documented = BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        for a in statement["Action"].as_array().unwrap() {
            documented.insert(a.as_str().unwrap().to_string());
        }
    }
    let called: BTreeSet<String> = foresight_aws::ACTUATOR_ACTIONS
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(documented, called);
    assert!(foresight_aws::DISCOVERY_ACTIONS
        .iter()
        .all(|a| foresight_aws::ACTUATOR_ACTIONS.contains(a)));
}
