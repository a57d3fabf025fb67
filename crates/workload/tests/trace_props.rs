//! Property tests of the `minute,count` trace reader: arbitrary text never panics and never
//! allocates beyond the trace's bound, and a valid trace reads back exactly. `PROPTEST_CASES`
//! sets the number of cases (256 by default).

use chrono::{Duration, NaiveDate};
use foresight_workload::{Series, MAX_STEPS};
use proptest::prelude::*;

/// A plausible row: a timestamp in any year chrono formats, and a count that may not parse.
fn row() -> impl Strategy<Value = String> {
    (
        -9999i32..=9999,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        prop_oneof!["[0-9]{1,20}", "-?[0-9.eE+-]{0,8}", "[ -~]{0,6}"],
    )
        .prop_map(|(y, mo, d, h, mi, count)| {
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:00,{count}")
        })
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = Series::parse_minute_counts(&text, "t.csv");
        let _ = Series::parse_minute_counts(&format!("minute,count\n{text}"), "t.csv");
    }

    #[test]
    fn rows_at_any_dates_are_read_or_refused_within_the_bound(
        rows in prop::collection::vec(row(), 1..6),
    ) {
        let text = format!("minute,count\n{}\n", rows.join("\n"));
        if let Ok(t) = Series::parse_minute_counts(&text, "t.csv") {
            prop_assert!(t.values.len() as i64 <= MAX_STEPS);
        }
    }

    #[test]
    fn a_valid_trace_reads_back_exactly(
        start_minute in 0i64..10_000_000,
        steps in prop::collection::vec((1i64..500, 0u64..1_000_000), 1..60),
    ) {
        let start = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap()
            + Duration::minutes(start_minute);
        let mut text = String::from("minute,count\n");
        let mut expected: Vec<Option<f64>> = Vec::new();
        let mut at = 0usize;
        for (k, (gap, count)) in steps.iter().enumerate() {
            if k > 0 {
                at += *gap as usize;
            }
            let t = start + Duration::minutes(at as i64);
            text.push_str(&format!("{},{count}\n", t.format("%Y-%m-%d %H:%M:%S")));
            expected.resize(at, None);
            expected.push(Some(*count as f64));
        }
        let t = Series::parse_minute_counts(&text, "t.csv").unwrap();
        prop_assert_eq!(t.start, start.and_utc().timestamp());
        prop_assert_eq!(t.values, expected);
    }
}
