//! Counter keys are stable under the edits a reload or a redeploy with
//! persistent counters sees: a counter keeps its count when its limit's
//! maximum or message changes or rules are added around it, and only a
//! change of what it counts (amount, window, partition) makes a new one.

use portcullis_compiler::{Input, compile};

fn keys(text: &str) -> Vec<String> {
    let out = compile(&[Input {
        server: "s".into(),
        path: "s.policy".into(),
        text: text.into(),
    }]);
    let set = out.into_set().unwrap_or_else(|o| panic!("{}", o.render()));
    set.servers[0]
        .counters
        .iter()
        .map(|c| c.key.clone())
        .collect()
}

#[test]
fn unnamed_limits_are_keyed_by_what_they_count() {
    let before = keys(
        r#"server s {
  tool pay {
    deny "no x" when args.x == 1
    limit sum(args.n) <= 1000 per day -> "spend cap"
    limit 3 per day
    limit 10 per 1h by args.customer
  }
}
"#,
    );
    // A rule inserted above, maximums and messages changed, limits reordered.
    let after = keys(
        r#"server s {
  tool pay {
    deny "no y" when args.y == 1
    deny "no x" when args.x == 1
    limit 5 per day
    limit 20 per 1h by args.customer -> "slow down"
    limit sum(args.n) <= 2000 per day -> "new cap"
  }
}
"#,
    );
    let mut b = before.clone();
    let mut a = after.clone();
    b.sort();
    a.sort();
    assert_eq!(a, b, "before {before:?}, after {after:?}");
    assert!(
        before.contains(&"s/pay.sum(args.n) per day".to_string()),
        "{before:?}"
    );
    // What is counted changed: a new counter.
    let changed = keys("server s {\n  tool pay {\n    limit 3 per 1d\n  }\n}\n");
    assert_eq!(changed, ["s/pay.count per 1d"]);
}

#[test]
fn identical_unnamed_limits_in_one_block_get_their_own_counters() {
    let k = keys("server s {\n  tool t {\n    limit 5 per hour\n    limit 10 per hour\n  }\n}\n");
    assert_eq!(k, ["s/t.count per hour", "s/t.count per hour #2"]);
}
