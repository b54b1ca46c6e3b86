//! `portcullis policies`: what this binary enforces.

use crate::embedded;

/// Prints the environment, the combined digest and one line per server.
pub fn run() -> i32 {
    println!("environment: {}", embedded::ENV);
    println!("digest:      sha256:{}", embedded::DIGEST);
    println!("sources:     {}", embedded::SOURCES.len());
    if embedded::POLICIES.is_empty() {
        println!("servers:     none (this binary embeds no policy; use -c FILE)");
        return 0;
    }
    println!("servers:");
    let width = embedded::POLICIES
        .iter()
        .map(|p| p.meta().server.len())
        .max()
        .unwrap_or(0);
    for p in embedded::POLICIES.iter() {
        let m = p.meta();
        let rules = m
            .rules
            .iter()
            .filter(|r| r.kind == portcullis_core::policy::RuleKind::Rule)
            .count();
        println!(
            "  {:<width$}  {:<12}  {:>3} rule{}  sha256:{}  {}",
            m.server,
            m.dialect,
            rules,
            if rules == 1 { " " } else { "s" },
            &m.digest[..16],
            m.file
        );
    }
    0
}
