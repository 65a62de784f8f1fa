//! The README's config-file example is a real config file: every fenced `toml`
//! block in README.md parses with the server's own parser, and the values it
//! shows are the values the server would run with.

use credits_server::config::parse_settings;

/// The bodies of the README's fenced ```toml blocks, in order.
fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match current.as_mut() {
            None if line.trim_start().starts_with("```toml") => current = Some(Vec::new()),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => {
                blocks.push(current.take().unwrap_or_default().join("\n"));
            }
            Some(lines) => lines.push(line),
        }
    }
    assert!(current.is_none(), "README.md has a ```toml block that is never closed");
    blocks
}

#[test]
fn the_readme_config_example_parses_with_the_servers_parser() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md is readable");
    let blocks = toml_blocks(&readme);
    assert!(!blocks.is_empty(), "README.md shows a config file in a ```toml block");
    for (index, block) in blocks.iter().enumerate() {
        let parsed = parse_settings(block).unwrap_or_else(|error| {
            panic!("README.md's toml block {index} does not parse: {error}\n{block}")
        });
        if index == 0 {
            assert_eq!(parsed.settings.initial_credits, 8);
            assert_eq!(parsed.settings.cost_per_video, 10);
            assert_eq!(parsed.time_zone, chrono_tz::Asia::Shanghai);
            let starter =
                parsed.settings.plans.iter().find(|plan| plan.name == "starter").expect("starter plan");
            assert_eq!(starter.creem_product_id, "prod_starter");
            assert_eq!(parsed.holds.default_ttl_seconds, 900);
        }
    }
}
