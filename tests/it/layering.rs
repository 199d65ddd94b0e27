//! The layering of CONTRIBUTING.md, checked: every `crate::…` path in `src/` names a module of
//! a lower rank than the module it is written in (or that module itself). Lower ranks are the
//! values and formats, then the stages, the composition, the services and the process; two
//! modules of one rank may not import each other, so no import circle can form. A new
//! top-level module must be given a rank here, which is where its place is decided.

use std::collections::BTreeSet;
use std::path::Path;

/// Each top-level module of `src/` and its rank. The table of CONTRIBUTING.md, "Layering".
const RANKS: &[(&str, u32)] = &[
    // 1. values and formats
    ("clock", 10),
    ("body", 10),
    ("canonical", 10),
    ("keygen", 10),
    ("config", 11),
    ("telemetry", 12),
    ("certs", 12),
    ("jwt", 12),
    ("metrics", 12),
    // 2. stores and stages, each with narrow arguments and an error of its own
    ("session", 20),
    ("login", 20),
    ("auth", 21),
    ("route", 21),
    ("proxy", 22),
    ("token", 22),
    ("front", 23),
    // 3. composition
    ("state", 30),
    ("reject", 30),
    ("ctx", 31),
    // 4. services
    ("gateway", 40),
    ("admin", 41),
    // 5. process
    ("server", 50),
    ("reload", 50),
    ("init", 50),
    ("run", 51),
    ("demo", 52),
    ("cli", 53),
];

fn rank(module: &str) -> Option<u32> {
    RANKS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

/// The top-level modules named by `crate::` paths in `code` (comments removed first).
fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let code: String = code
        .lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // e.g. `$crate::` or `my_crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for item in split_top_level(&group[..end]) {
                out.insert(first_segment(item));
            }
        } else {
            out.insert(first_segment(rest));
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

fn first_segment(path: &str) -> String {
    path.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The index of the `}` closing a group that starts just after its `{`.
fn matching_brace(text: &str) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

/// The comma-separated items of a `use` group, nested groups kept whole.
fn split_top_level(group: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_import_runs_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative.components().next().unwrap().as_os_str();
        let top = top.to_str().unwrap().trim_end_matches(".rs");
        if top == "lib" || top == "main" || top == "bench" {
            // The crate root and the binary (`main.rs` with its load harness, `bench/`, whose
            // `crate::` is the binary's) sit above every layer.
            continue;
        }
        let Some(own) = rank(top) else {
            let problem = format!("src/{top}: no rank; give it one in tests/it/layering.rs");
            if !wrong.contains(&problem) {
                wrong.push(problem);
            }
            continue;
        };
        let code = std::fs::read_to_string(file).unwrap();
        for module in imports(&code) {
            if module == top {
                continue;
            }
            match rank(&module) {
                Some(r) if r < own => {}
                Some(r) => wrong.push(format!(
                    "src/{}: {top} ({own}) imports {module} ({r})",
                    relative.display()
                )),
                None => wrong.push(format!(
                    "src/{}: imports {module}, which has no rank",
                    relative.display()
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering (CONTRIBUTING.md):\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn the_import_reader_sees_groups_paths_and_nothing_in_comments() {
    let code = "use crate::{auth::{self, Verifier}, body::Body};\n\
                let x = crate::clock::Clock::system(); // crate::state\n\
                /// [`crate::ctx`]\n\
                macro_rules! m { () => { $crate::metrics::x } }\n\
                use crate::config;";
    let seen: Vec<String> = imports(code).into_iter().collect();
    assert_eq!(seen, ["auth", "body", "clock", "config"]);
}
